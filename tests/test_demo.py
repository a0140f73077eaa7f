"""The demo's method specs and its report (a few steps on the world model)."""

import json

import pytest

from actionbench.errors import ActionBenchError
from actionbench.world import render as R
from evaluate.demo import (
    DemoSettings,
    _add_seed,
    budget_steps,
    compare_table,
    demo_config,
    merge_reports,
    parse_method_spec,
    run_demo,
    write_tables,
)


def test_method_spec_parses_options_as_yaml_scalars():
    assert parse_method_spec("adi") == ("adi", {})
    assert parse_method_spec("adi:mask=none:beta=0.4") == ("adi", {"mask": "none", "beta": 0.4})
    assert parse_method_spec("adi:layerwise=false") == ("adi", {"layerwise": False})
    assert parse_method_spec("dreambooth:lr=1e-4") == ("dreambooth", {"lr": 1e-4})  # YAML 1.1 alone reads a string
    assert parse_method_spec("adi:mask=action-only") == ("adi", {"mask": "action-only"})
    with pytest.raises(ActionBenchError, match="KEY=VALUE"):
        parse_method_spec("adi:mask")


def test_demo_cli_rejects_an_unknown_option_before_learning(tmp_path, capsys):
    from actionbench.cli import main

    code = main(["demo", "--methods", "sd,adi:single_token=true", "--out", str(tmp_path)])
    assert code != 0
    assert "single_token" in capsys.readouterr().err
    assert not (tmp_path / "demo.json").exists()


def test_demo_cli_threads_sets_torchs_thread_count_and_refuses_zero(tmp_path, capsys, monkeypatch):
    import torch

    from actionbench.cli import main
    from evaluate import demo

    before = torch.get_num_threads()
    try:
        assert main(["demo", "--threads", "0", "--out", str(tmp_path)]) != 0
        assert "--threads 0" in capsys.readouterr().err
        seen = {}
        monkeypatch.setattr(demo, "run_demo", lambda s, out, resume=False: seen.setdefault("threads", torch.get_num_threads()) and 1 / 0)
        with pytest.raises(ZeroDivisionError):  # stop after the thread count was set, before any learning
            main(["demo", "--threads", "1", "--out", str(tmp_path)])
        assert seen["threads"] == 1
    finally:
        torch.set_num_threads(before)


def test_demo_runs_a_method_with_options_and_writes_its_report(tmp_path):
    s = DemoSettings(actions=("handstand",), methods=("sd", "adi:mask=none"), steps=2, n=1, sample_steps=2, world="v2b")
    report = run_demo(s, tmp_path)
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert set(saved["results"]["handstand"]) == {"sd", "adi:mask=none"}
    assert saved["results"] == report["results"]
    assert saved["results"]["handstand"]["sd"]["n"] == 9  # one image for each of the 9 subject kinds
    assert "handstand" in saved["unnamed_actions"]
    sd = saved["results"]["handstand"]["sd"]
    assert sum(sd["judged_actions"].values()) == 9 and 0.0 <= sd["human_on_animals"] <= 1.0
    write_tables(report, tmp_path)
    assert "| handstand | adi:mask=none |" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "table.csv").read_text().splitlines()[0].startswith("action,method,action_acc")
    assert (tmp_path / "handstand_grid.png").exists()


def test_learning_seeds_pool_into_paired_slots_and_the_compare_table(tmp_path):
    s = DemoSettings(actions=("handstand",), methods=("sd", "adi"), steps=1, n=1, sample_steps=2, learn_seeds=(0, 1), world="v2b")
    report = run_demo(s, tmp_path)
    adi, sd = report["results"]["handstand"]["adi"], report["results"]["handstand"]["sd"]
    assert adi["n"] == sd["n"] == 18 and adi["seeds"] == [0] * 9 + [1] * 9 and len(adi["hits"]) == 18
    assert adi["total"] == sum(a and b for a, b in adi["hits"]) / 18
    assert adi["animal_slots"] == 2 * len(R.ANIMALS)
    assert (tmp_path / "learned" / "handstand-adi-seed1.safetensors").exists()
    md = compare_table(report, "adi", n_boot=50)
    rows = {line.split(" | ")[0].strip("| "): line for line in md.splitlines()[2:]}
    assert set(rows) == {"sd", "adi"}
    assert rows["adi"].endswith("| - | - | - |")  # no test of the reference against itself
    p_mcnemar = float(rows["sd"].rstrip(" |").split("|")[-1])
    assert 0.0 < p_mcnemar <= 1.0


def test_add_seed_sums_counts_not_rates():
    by = {}
    one = {"hits": [[1, 1], [0, 1]], "n": 2, "action": 1.0, "subject": 0.5, "total": 0.5, "judged_actions": {"sit": 2},
           "animal_slots": 1, "animals_drawn_human": 1, "human_on_animals": 1.0}
    two = {"hits": [[0, 0], [1, 0]], "n": 2, "action": 0.0, "subject": 0.5, "total": 0.0, "judged_actions": {"jump": 2},
           "animal_slots": 3, "animals_drawn_human": 0, "human_on_animals": 0.0}
    _add_seed(by, "m", 0, one)
    _add_seed(by, "m", 1, two)
    m = by["m"]
    assert (m["n"], m["action"], m["subject"], m["total"]) == (4, 0.5, 0.5, 0.25)
    assert m["human_on_animals"] == 0.25 and m["judged_actions"] == {"sit": 2, "jump": 2} and m["seeds"] == [0, 0, 1, 1]


def test_equal_budget_gives_each_learner_the_same_exemplar_images():
    assert budget_steps(600, 2) == 300 and budget_steps(600, 8) == 75 and budget_steps(7, 2) == 4
    with pytest.raises(ActionBenchError, match="images-seen"):
        budget_steps(0, 2)
    s = DemoSettings(images_seen=600)
    steps = {m: demo_config(m, s)[1] for m in ("textual-inversion", "pplus", "adi", "dreambooth")}
    for name, config in steps.items():
        assert config.steps * config.batch_size >= 600 > (config.steps - 1) * config.batch_size, name
    assert steps["pplus"].steps < steps["textual-inversion"].steps  # P+ draws 8 exemplars a step, TI 2
    assert demo_config("adi:steps=5", s)[1].steps == 5  # a spec's own steps win
    assert demo_config("sd", s)[1].steps == 0 and demo_config("controlnet", s)[1].steps == 0  # nothing to learn


def test_resume_skips_runs_already_in_the_report_and_refuses_other_settings(tmp_path, monkeypatch):
    import evaluate.demo as demo

    s = DemoSettings(actions=("handstand",), methods=("sd",), steps=1, n=1, sample_steps=2, world="v2b")
    first = run_demo(s, tmp_path)
    assert len(list((tmp_path / "images" / "handstand" / "sd" / "seed0").glob("*.png"))) == 9

    def no_learning(*a, **k):
        raise AssertionError("a resumed run learned again")

    monkeypatch.setattr(demo, "learn_for_demo", no_learning)
    again = run_demo(s, tmp_path, resume=True)
    assert again["results"] == first["results"]
    assert (tmp_path / "handstand_grid.png").exists()  # drawn from the saved images
    with pytest.raises(ActionBenchError, match="sample_steps: 2 there, 3 now"):
        run_demo(DemoSettings(actions=("handstand",), methods=("sd",), steps=1, n=1, sample_steps=3, world="v2b"), tmp_path, resume=True)


def _record(seed, hits, leak=0):
    return {"hits": hits, "n": len(hits), "seeds": [seed] * len(hits), "judged_actions": {"sit": len(hits)},
            "animal_slots": 1, "animals_drawn_human": leak,
            "action": sum(a for _, a in hits) / len(hits), "subject": sum(s for s, _ in hits) / len(hits),
            "total": sum(a and s for s, a in hits) / len(hits), "human_on_animals": float(leak)}


def _report(results, seconds, seeds=(0,), **settings):
    s = {**DemoSettings(images_seen=600).__dict__, **settings}
    s.update(actions=list(results), methods=list(dict.fromkeys(m for by in results.values() for m in by)), learn_seeds=list(seeds))
    return {"settings": s, "results": results, "seconds": {**seconds, "total": sum(seconds.values())}, "steps": {}}


def test_merge_reports_folds_parts_in_seed_order_and_refuses_other_settings():
    a = _report({"jump": {"adi": _record(1, [[1, 1], [1, 0]])}}, {"jump/adi/seed1": 10.0}, seeds=(1,))
    b = _report({"jump": {"adi": _record(0, [[0, 0], [0, 1]]), "sd": _record(0, [[1, 1], [1, 1]])},
                 "sit": {"adi": _record(0, [[1, 1], [1, 1]])}}, {"jump/adi/seed0": 5.0, "sit/adi/seed0": 7.0})
    m = merge_reports([a, b])
    adi = m["results"]["jump"]["adi"]
    assert adi["seeds"] == [0, 0, 1, 1] and adi["hits"] == [[0, 0], [0, 1], [1, 1], [1, 0]]
    assert (adi["n"], adi["total"], adi["human_on_animals"]) == (4, 0.25, 0.0)
    assert m["seconds"]["total"] == 22.0 and sorted(m["settings"]["learn_seeds"]) == [0, 1]
    assert set(m["results"]) == {"jump", "sit"}
    with pytest.raises(ActionBenchError, match="both records"):
        merge_reports([b, b])
    with pytest.raises(ActionBenchError, match="n"):
        merge_reports([a, _report({"sit": {"sd": _record(0, [[1, 1]])}}, {}, n=2)])


def test_paired_tests_use_the_actions_both_methods_ran_and_adi_with_a_rate_is_the_reference():
    from evaluate.demo import reference_method

    ref = "adi:lr=0.005"
    results = {"jump": {ref: _record(0, [[1, 1]] * 6 + [[0, 0]] * 6), "pplus": _record(0, [[0, 0]] * 12),
                        "adi:mask=none:lr=0.005": _record(0, [[1, 1]] * 12)},
               "sit": {ref: _record(0, [[1, 1]] * 12), "adi:mask=none:lr=0.005": _record(0, [[1, 1]] * 12)}}
    report = _report(results, {})
    assert reference_method(report) == ref
    rows = {line.split(" | ")[0].strip("| "): line for line in compare_table(report, ref, n_boot=50).splitlines()[2:]}
    assert "(1 actions)" in rows["pplus"] and "-50.0%" in rows["pplus"]  # on jump only: 0/12 against 6/12
    assert "(1 actions)" not in rows["adi:mask=none:lr=0.005"] and "+25.0%" in rows["adi:mask=none:lr=0.005"]


def test_totals_matrix_puts_actions_in_columns_and_marks_missing_and_short_cells():
    from evaluate.demo import totals_matrix

    a = _report({"jump": {"adi": _record(1, [[1, 1], [1, 0]])}}, {}, seeds=(1,))
    b = _report({"jump": {"adi": _record(0, [[0, 0], [0, 1]]), "sd": _record(0, [[1, 1], [1, 1]])},
                 "sit": {"adi": _record(0, [[1, 1], [1, 1]]), "sd": _record(0, [[1, 0], [1, 1]])}}, {})
    lines = totals_matrix(merge_reports([a, b])).splitlines()
    assert lines[0] == "| method | jump | sit |"
    rows = {line.split(" | ")[0].strip("| "): line.strip("| ").split(" | ")[1:] for line in lines[2:]}
    # adi on jump pooled over two seeds (1 of 4 slots right) while the usual cell has one seed
    assert rows["adi"] == ["25% (2 seeds)", "100%"]
    assert rows["sd"] == ["100%", "50%"]
    c = _report({"sit": {"sd": _record(0, [[1, 1]])}}, {}, n=1)
    c["results"]["jump"] = {}
    assert totals_matrix(c).splitlines()[2] == "| sd | 100% | - |"


def test_paired_tests_keep_an_action_where_the_reference_ran_more_seeds_on_the_shared_seeds_only():
    ref = "adi"
    a = _report({"jump": {ref: _record(1, [[0, 0]] * 4)}}, {}, seeds=(1,))  # a second ADI seed, all misses
    b = _report({"jump": {ref: _record(0, [[1, 1]] * 4), "sd": _record(0, [[0, 0]] * 4)}}, {})
    report = merge_reports([a, b])
    rows = {line.split(" | ")[0].strip("| "): line for line in compare_table(report, ref, n_boot=50).splitlines()[2:]}
    # sd is paired with ADI's seed 0 only (0/4 against 4/4), not dropped and not against seed 1's misses
    assert "-100.0%" in rows["sd"] and "(4 paired images)" not in rows["sd"]
    assert "| 4 |" in rows["sd"] and "| 8 |" in rows[ref]
