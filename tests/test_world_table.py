"""The world table's learning-rate sweep: its specs and the choice it makes."""

import pytest

from evaluate.demo import DemoSettings, demo_config
from evaluate.world_table import ADI_ABLATIONS, ADI_ABLATIONS_BY_WORLD, SWEEP, choose_lr, sweep_specs, table_specs


def _write_part(out, name, report):
    """Writes ``report`` as the world table's part ``name`` under ``out``, as `table --part` does."""
    import json

    folder = out / "world-table" / "parts" / name
    folder.mkdir(parents=True)
    (folder / "demo.json").write_text(json.dumps(report))


def test_sweep_specs_are_valid_demo_specs_with_their_rates():
    specs = sweep_specs()
    assert len(specs) == sum(len(v) for v in SWEEP.values())
    s = DemoSettings(images_seen=600)
    for spec in specs:
        name, config = demo_config(spec, s)
        assert f"{config.lr:g}" == spec.split("lr=")[1], spec
        assert config.steps * config.batch_size >= 600


def test_choose_lr_takes_the_best_total_then_action_then_larger_rate():
    r = lambda total, action: {"total": total, "action": action}  # noqa: E731
    results = {
        "adi:lr=0.001": r(0.2, 0.5), "adi:lr=0.005": r(0.3, 0.4), "adi:lr=0.02": r(0.1, 0.9),
        "pplus:lr=0.001": r(0.3, 0.4), "pplus:lr=0.005": r(0.3, 0.6),
        "dreambooth:lr=1e-05": r(0.1, 0.1), "dreambooth:lr=0.0001": r(0.1, 0.1),
        "sd": r(0.9, 0.9),
    }
    assert choose_lr(results) == {"adi": 0.005, "pplus": 0.005, "dreambooth": 1e-4}


def test_table_specs_cover_every_method_and_ablation_at_the_chosen_rates():
    chosen = {m: lrs[1] for m, lrs in SWEEP.items()}
    specs = table_specs(chosen)
    names = [s.split(":")[0] for s in specs]
    assert {"sd", "controlnet", "dreambooth", "textual-inversion", "reversion", "custom-diffusion", "pplus", "adi"} <= set(names)
    assert sum(n == "adi" for n in names) == 1 + len(ADI_ABLATIONS)
    assert all(s.endswith(f"lr={chosen['adi']:g}") for s in specs if s.startswith("adi:"))
    s = DemoSettings(images_seen=600)
    for spec in specs:
        demo_config(spec, s)  # every option is one the method takes


def test_v3_table_adds_the_papers_reversed_masks_and_keeps_v2bs_set():
    chosen = {m: lrs[1] for m, lrs in SWEEP.items()}
    v2b, v3 = table_specs(chosen, "v2b"), table_specs(chosen, "v3")
    assert "adi:mask=reversed:lr=0.005" in v3 and "adi:mask=reversed:lr=0.005" not in v2b
    assert set(v2b) < set(v3) and len(v3) == len(v2b) + 1
    assert ADI_ABLATIONS_BY_WORLD["v2b"] == ADI_ABLATIONS
    s = DemoSettings(images_seen=600, world="v3")
    for spec in v3:
        demo_config(spec, s)


def test_select_specs_names_methods_without_their_rates():
    from evaluate.world_table import select_specs

    specs = table_specs({m: lrs[1] for m, lrs in SWEEP.items()})
    assert select_specs(specs, ["sd", "adi"]) == ["sd", "adi:lr=0.005"]
    assert select_specs(specs, ["adi:mask=none"]) == ["adi:mask=none:lr=0.005"]
    import pytest

    with pytest.raises(SystemExit, match="nonsense"):
        select_specs(specs, ["nonsense"])


def test_fill_section_replaces_only_the_marked_block_and_refuses_bad_markers():
    import pytest

    from evaluate.world_table import BEGIN, END, fill_section

    text = f"intro\n{BEGIN}\nold table\n{END}\noutro\n"
    filled = fill_section(text, "\nnew table\n")
    assert filled == f"intro\n{BEGIN}\nnew table\n{END}\noutro\n"
    assert fill_section(filled, "new table") == filled  # refilling is idempotent
    for bad in ("no markers", f"{END}\n{BEGIN}", f"{BEGIN}\n{BEGIN}\n{END}"):
        with pytest.raises(SystemExit, match="markers"):
            fill_section(bad, "x")


def test_the_demo_runs_its_learners_at_the_rates_the_sweep_chose():
    import json
    from pathlib import Path

    from evaluate.demo import DEMO_IMAGES_SEEN, DEMO_METHODS, parse_method_spec

    chosen = json.loads((Path(__file__).parents[1] / "results/world-sweep/chosen_lr.json").read_text())
    assert chosen["images_seen"] == DEMO_IMAGES_SEEN
    learners = [parse_method_spec(spec) for spec in DEMO_METHODS if not spec.startswith(("sd", "controlnet"))]
    assert learners and all(opts["lr"] == chosen["lr"][name] for name, opts in learners)
    s = DemoSettings(images_seen=DEMO_IMAGES_SEEN)
    for spec in DEMO_METHODS:
        demo_config(spec, s)


def test_the_v3_demo_runs_its_learners_at_the_rates_the_v3_sweep_chose():
    import json
    from pathlib import Path

    from evaluate.demo import DEMO_IMAGES_SEEN, DEMO_METHODS_V3, parse_method_spec

    chosen = json.loads((Path(__file__).parents[1] / "results/world-v3-sweep/chosen_lr.json").read_text())
    assert chosen["images_seen"] == DEMO_IMAGES_SEEN and chosen["action"] == "salute"
    learners = [parse_method_spec(spec) for spec in DEMO_METHODS_V3 if spec != "sd"]
    assert learners and all(opts["lr"] == chosen["lr"][name] for name, opts in learners)  # adi:mask=none takes ADI's


def test_docs_section_adds_the_unnamed_actions_only_table_when_both_kinds_ran():
    from evaluate.world_table import docs_section

    rec = lambda hits: {"hits": hits, "n": len(hits), "seeds": [0] * len(hits), "action": 0.5, "subject": 1.0, "total": 0.5}  # noqa: E731
    report = {"results": {"salute": {"adi": rec([[1, 1], [1, 0]]), "sd": rec([[1, 0], [1, 0]])},
                          "sit": {"adi": rec([[1, 1], [1, 1]]), "sd": rec([[1, 1], [1, 1]])}},
              "seconds": {"total": 120.0}, "unnamed_actions": ["salute", "meditate"]}
    text = docs_section(report)
    assert text.startswith("4 runs, 2 CPU-minutes")
    assert "| method | salute | sit |" in text and "The unnamed actions only (salute:" in text
    del report["unnamed_actions"]
    assert "unnamed actions only" not in docs_section(report)


def test_merge_docs_pools_all_actions_over_the_seeds_adi_ran_everywhere(tmp_path):
    import argparse

    from test_demo import _record, _report

    from evaluate.demo import merge_reports
    from evaluate.world_table import BEGIN, END, balanced_seeds, merge

    parts = {
        "a": _report({"salute": {"adi": _record(0, [[1, 1]] * 2), "sd": _record(0, [[1, 0]] * 2)},
                      "sit": {"adi": _record(0, [[1, 1]] * 2), "sd": _record(0, [[1, 1]] * 2)}},
                     {"salute/adi/seed0": 60.0, "sit/adi/seed0": 60.0}),
        "b": _report({"salute": {"adi": _record(1, [[1, 0]] * 2)}, "sit": {"adi": _record(1, [[1, 0]] * 2)}},
                     {"salute/adi/seed1": 60.0, "sit/adi/seed1": 60.0}, seeds=(1,)),
        "c": _report({"salute": {"adi": _record(2, [[1, 1]] * 2)}}, {"salute/adi/seed2": 60.0}, seeds=(2,)),
        # an ablation: seed 0 on both actions, seed 1 on salute only
        "d": _report({"salute": {"abl": _record(0, [[1, 1]] * 2)}, "sit": {"abl": _record(0, [[1, 1]] * 2)}},
                     {"salute/abl/seed0": 60.0, "sit/abl/seed0": 60.0}),
        "e": _report({"salute": {"abl": _record(1, [[1, 0]] * 2)}}, {"salute/abl/seed1": 60.0}, seeds=(1,)),
    }
    for name, rep in parts.items():
        _write_part(tmp_path, name, {**rep, "unnamed_actions": ["salute"]})
    docs = tmp_path / "doc.md"
    docs.write_text(f"intro\n{BEGIN}\nold\n{END}\nend\n")
    report = merge(argparse.Namespace(out=str(tmp_path), docs=str(docs)))
    assert balanced_seeds(report) == [0, 1]  # seed 2 ran on salute only
    text = docs.read_text()
    header = "All actions, each method with the learning seeds it ran on every action (adi: seeds 0 and 1):"
    pooled = text.split(header)[1].split("The unnamed actions only")[0]
    assert "| adi | 50.0%" in pooled  # seeds 0 and 1 on both actions: 4 of 8; with seed 2 it would be 6 of 10
    abl = next(line for line in pooled.splitlines() if line.startswith("| abl |")).split(" | ")
    assert abl[1].startswith("100.0%") and abl[5] == "4"  # its seed 1 (salute only) is left out: 4 images, all hits
    assert "old" not in text and text.startswith("intro\n") and text.endswith("end\n")
    parts["c"]["results"]["sit"] = {"adi": _record(2, [[1, 1]] * 2)}
    assert balanced_seeds(merge_reports(list(parts.values()))) == [0, 1, 2]


def test_seed_spread_gives_each_pair_of_learning_seeds_its_total_gap():
    from test_demo import _record

    from evaluate.demo import fold_scores
    from evaluate.world_table import docs_section, seed_spread

    three = fold_scores(fold_scores(_record(0, [[1, 1]] * 4), _record(1, [[1, 1], [1, 0], [0, 1], [1, 0]])),
                        _record(2, [[1, 0]] * 4))  # totals 1.0, 0.25, 0.0
    report = {"results": {"salute": {"adi": three, "sd": _record(0, [[1, 1]] * 4)}}, "seconds": {"total": 60.0}}
    gaps = sorted(seed_spread(report), key=lambda x: x[2])
    assert [round(g, 2) for _, _, g in gaps] == [0.25, 0.75, 1.0] and {m for _, m, _ in gaps} == {"adi"}
    text = docs_section(report)
    assert "over the 3 pairs of seeds" in text and "75 points at the median and 100 at most (adi on salute)" in text
    assert "pairs of seeds" not in docs_section({**report, "results": {"salute": {"sd": _record(0, [[1, 1]] * 4)}}})


def test_table_no_merge_writes_the_part_but_leaves_the_merged_table_alone(tmp_path, monkeypatch):
    import argparse
    import json

    import evaluate.world_table as wt

    sweep_dir = tmp_path / "world-sweep"
    sweep_dir.mkdir()
    (sweep_dir / "chosen_lr.json").write_text(json.dumps({"lr": {m: lrs[0] for m, lrs in SWEEP.items()}}))
    ran, merged = [], []
    monkeypatch.setattr(wt, "run_demo", lambda s, out, resume: ran.append((s.actions, s.learn_seeds, out)) or {})
    monkeypatch.setattr(wt, "write_tables", lambda report, out: None)
    monkeypatch.setattr(wt, "merge", lambda args: merged.append(args.part))
    args = argparse.Namespace(out=str(tmp_path), methods="adi", actions="salute", seeds="2", n_table=8,
                              images_seen=600, device="cpu", part="u", no_merge=True)
    wt.table(args)
    assert ran == [(("salute",), (2,), tmp_path / "world-table" / "parts" / "u")] and merged == []
    wt.table(argparse.Namespace(**{**vars(args), "no_merge": False}))
    assert merged == ["u"]


def test_merge_reads_parts_in_the_order_they_were_named(tmp_path):
    import argparse

    from test_demo import _record, _report

    from evaluate.world_table import merge

    for name, action in (("aa", "sit"), ("b", "cheer"), ("a", "salute")):
        _write_part(tmp_path, name, _report({action: {"adi": _record(0, [[1, 1]] * 2)}}, {f"{action}/adi/seed0": 60.0}))
    report = merge(argparse.Namespace(out=str(tmp_path), docs=None))
    assert list(report["results"]) == ["salute", "cheer", "sit"]  # a, b, then aa (plain sorting: a, aa, b)
    assert report["parts"] == ["parts/a", "parts/b", "parts/aa"]


def test_the_v3_table_runs_on_the_v3_model_into_its_own_folders(tmp_path, monkeypatch):
    import argparse
    import json

    import evaluate.world_table as wt

    sweep_dir = tmp_path / "world-v3-sweep"
    sweep_dir.mkdir()
    (sweep_dir / "chosen_lr.json").write_text(json.dumps({"lr": {m: lrs[0] for m, lrs in SWEEP.items()}}))
    ran = []
    monkeypatch.setattr(wt, "run_demo", lambda s, out, resume: ran.append((s.world, s.model, s.methods, out)) or {})
    monkeypatch.setattr(wt, "write_tables", lambda report, out: None)
    args = argparse.Namespace(out=str(tmp_path), methods=None, actions="salute", seeds="0", n_table=8, world="v3",
                              images_seen=600, device="cpu", part="a", no_merge=True)
    wt.table(args)
    world, model, specs, out = ran[0]
    assert (world, model, out) == ("v3", "world-v3", tmp_path / "world-v3-table" / "parts" / "a")
    assert list(specs[:2]) == ["sd", "controlnet"]  # the v3 pipeline takes the v3 ControlNet by default
    with pytest.raises(SystemExit, match="sweep --world v3"):
        wt.table(argparse.Namespace(**{**vars(args), "out": str(tmp_path / "empty")}))


def test_each_world_fills_its_own_docs_section():
    from evaluate.world_table import BEGIN, END, fill_section, markers

    b3, e3 = markers("v3")
    assert markers("v2b") == (BEGIN, END) and "--world v3" in b3 and b3 != BEGIN
    text = f"{BEGIN}\nv2b table\n{END}\n{b3}\nold\n{e3}\n"
    filled = fill_section(text, "v3 table", *markers("v3"))
    assert "v2b table" in filled and "v3 table" in filled and "old" not in filled


def test_leakage_summary_pools_counted_slots_and_fills_phenomena(tmp_path):
    import json

    from evaluate.world_table import leakage_summary, update_phenomena

    def rec(leaks, seeds, human, animals):
        return {"hits": [[1, 1]] * len(leaks), "seeds": seeds, "leaks": leaks, "animals_drawn_human": human,
                "animal_slots": animals}

    # ADI: 1 of 4 counted slots leaks (one slot not counted); the text prompt: none of 2
    report = {"results": {
        "salute": {"adi": rec([[0, 1, 1], [0, 0, 0], [None, None, None]], [0, 0, 1], 1, 2), "sd": rec([[0, 0, 0]], [0], 0, 1)},
        "pray": {"adi": rec([[0, 0, 0], [0, 0, 0]], [0, 1], 0, 2), "sd": rec([[0, 0, 0]], [0], 0, 1)}}}
    s = leakage_summary(report, n_boot=100)
    assert s["context_leakage"] == {"adi": 25.0, "sd": 0.0}
    assert s["images"] == {"adi": 4, "sd": 2} and s["runs"] == {"adi": 4, "sd": 2}
    assert s["animals_drawn_human"] == {"adi": 25.0, "sd": 0.0}
    low, high = s["context_leakage_ci"]["adi"]
    assert 0.0 <= low <= 25.0 <= high <= 100.0
    path = tmp_path / "phenomena.json"
    path.write_text(json.dumps({"token_width": 1024, "context_leakage": None}))
    rep = update_phenomena(report, path, tmp_path / "results" / "world-v3-table")
    assert rep["token_width"] == 1024 and json.loads(path.read_text())["context_leakage"]["adi"] == 25.0
    assert rep["context_leakage_detail"]["source"] == "results/world-v3-table/demo.json"


def test_merge_on_v3_writes_the_pattern_the_leakage_and_its_own_docs_section(tmp_path):
    import argparse
    import json

    from test_demo import _record, _report

    from evaluate.world_table import BEGIN, END, markers, merge

    def v3(seed, hits, leaks):
        return {**_record(seed, hits), "leaks": leaks, "scene_leak": 0.0, "outfit_leak": 0.0,
                "context_leak": sum(row[2] for row in leaks) / len(leaks)}

    rep = _report({"salute": {"sd": v3(0, [[1, 0]] * 2, [[0, 0, 0]] * 2), "adi": v3(0, [[1, 1]] * 2, [[0, 1, 1], [0, 0, 0]])}},
                  {"salute/sd/seed0": 6.0, "salute/adi/seed0": 60.0}, world="v3")
    folder = tmp_path / "world-v3-table" / "parts" / "a"
    folder.mkdir(parents=True)
    (folder / "demo.json").write_text(json.dumps(rep))
    (tmp_path / "world-v3").mkdir()
    (tmp_path / "world-v3" / "phenomena.json").write_text(json.dumps({"token_width": 1024, "context_leakage": None}))
    b3, e3 = markers("v3")
    docs = tmp_path / "doc.md"
    docs.write_text(f"{BEGIN}\nv2b\n{END}\n{b3}\nold\n{e3}\n")
    merge(argparse.Namespace(out=str(tmp_path), docs=str(docs), world="v3"))
    text = docs.read_text()
    assert "v2b" in text and "old" not in text and "| adi | 1 | 100.0% (+100.0" in text  # the pattern, vs the text prompt
    assert (tmp_path / "world-v3-table" / "pattern.md").exists()
    assert json.loads((tmp_path / "world-v3" / "phenomena.json").read_text())["context_leakage"] == {"sd": 0.0, "adi": 50.0}


def test_merge_pools_the_pattern_and_leakage_over_the_seeds_each_method_ran_everywhere(tmp_path):
    """A learning seed that has run on some actions only (a part still running) stays in the
    per-action table but out of the pooled pattern and leakage, which would weigh those actions more."""
    import argparse
    import json

    from test_demo import _record, _report

    from evaluate.world_table import merge

    def v3(seed, hits, leaks):
        return {**_record(seed, hits), "leaks": leaks, "judged_context": [["city", "camo"]] * len(leaks),
                "scene_leak": 0.0, "outfit_leak": 0.0,
                "context_leak": sum(row[2] for row in leaks) / len(leaks)}

    clean, leaky = [[0, 0, 0]] * 2, [[0, 1, 1]] * 2
    a = _report({a: {"sd": v3(0, [[1, 0]] * 2, clean), "adi": v3(0, [[1, 1]] * 2, clean)} for a in ("salute", "sit")},
                {"salute/sd/seed0": 6.0, "salute/adi/seed0": 60.0, "sit/sd/seed0": 6.0, "sit/adi/seed0": 60.0}, world="v3")
    c = _report({"salute": {"adi": v3(1, [[0, 0]] * 2, leaky)}}, {"salute/adi/seed1": 60.0}, seeds=(1,), world="v3")
    for name, rep in (("a", a), ("c", c)):
        folder = tmp_path / "world-v3-table" / "parts" / name
        folder.mkdir(parents=True)
        (folder / "demo.json").write_text(json.dumps(rep))
    (tmp_path / "world-v3").mkdir()
    (tmp_path / "world-v3" / "phenomena.json").write_text(json.dumps({"token_width": 1024, "context_leakage": None}))
    report = merge(argparse.Namespace(out=str(tmp_path), docs=None, world="v3"))
    assert sorted(set(report["results"]["salute"]["adi"]["seeds"])) == [0, 1]  # the merged report keeps seed 1
    adi = next(r for r in json.loads((tmp_path / "world-v3-table" / "pattern.json").read_text()) if r["method"] == "adi")
    assert adi["runs"] == 2 and adi["action"]["method"] == 1.0  # salute and sit, seed 0 only
    phen = json.loads((tmp_path / "world-v3" / "phenomena.json").read_text())
    assert phen["context_leakage"]["adi"] == 0.0 and phen["context_leakage_detail"]["runs"]["adi"] == 2


def test_points_are_singular_for_one():
    from evaluate.world_table import _points

    assert (_points(0.0139), _points(0.0), _points(0.24)) == ("1 point", "0 points", "24 points")
