"""The ADI-trial table (evaluate/adi_trial.py) on hand-made reports: pooled rows, pairing on
shared seeds only, the kept share from training logs, the CSV's columns."""

import csv
import json

from evaluate.adi_trial import COLUMNS, EXPERIMENTS, trial_table, with_rate, write_table

SETTINGS = {"steps": 300, "lr": 0.005, "n": 1, "sample_steps": 25, "guidance": 7.5, "seed": 0, "model": "world",
            "images_seen": 600}


def _record(hits, seeds):
    return {"action": sum(a for _, a in hits) / len(hits), "subject": sum(s for s, _ in hits) / len(hits),
            "total": sum(s and a for s, a in hits) / len(hits), "n": len(hits), "hits": hits, "seeds": seeds}


def _full(hits, seeds):  # a record as the demo writes it, so that parts of one action fold
    return {**_record(hits, seeds), "judged_actions": {}, "animal_slots": 0, "animals_drawn_human": 0}


def _report(results, methods, seeds, seconds=None):
    return {"settings": {**SETTINGS, "actions": list(results), "methods": methods, "learn_seeds": seeds},
            "results": results, "seconds": seconds or {}, "steps": {}}


def _results(tmp_path):
    out = tmp_path / "results"
    (out / "world-sweep").mkdir(parents=True)
    (out / "world-sweep" / "chosen_lr.json").write_text(json.dumps({"lr": {"adi": 0.02, "pplus": 0.005}}))
    (out / "world-table").mkdir()
    # ADI hits 1 of 4 slots per seed, P+ 3 of 4; two seeds each on one action
    adi = _record([[1, 1], [1, 0], [1, 0], [1, 0]] * 2, [0] * 4 + [1] * 4)
    pplus = _record([[1, 1], [1, 1], [1, 1], [1, 0]] * 2, [0] * 4 + [1] * 4)
    table = _report({"salute": {"adi:lr=0.02": adi, "pplus:lr=0.005": pplus}}, ["adi:lr=0.02", "pplus:lr=0.005"], [0, 1])
    table["mask_kept"] = {"salute-adi_lr-0.02": 0.125, "salute-adi_lr-0.02-seed1": 0.12}
    (out / "world-table" / "demo.json").write_text(json.dumps(table))
    spec = with_rate(EXPERIMENTS["mask-controls"][0], {"adi": 0.02})
    part = out / "adi-trial" / "parts" / "c1"
    (part / "learned").mkdir(parents=True)
    # the control ran seed 0 only and hit every slot
    control = _report({"salute": {spec: _record([[1, 1]] * 4, [0] * 4)}}, [spec], [0], {f"salute/{spec}/seed0": 120.0})
    (part / "demo.json").write_text(json.dumps(control))
    log = part / "learned" / "salute-adi_mask-random_beta-0.875_lr-0.02.safetensors.log.jsonl"
    log.write_text("\n".join(json.dumps({"step": i, "kept": k}) for i, k in enumerate((0.125, 0.125, 0.25))))
    return out, spec


def test_rows_pool_pair_on_shared_seeds_and_read_kept(tmp_path):
    out, spec = _results(tmp_path)
    rows, _ = trial_table(out, n_boot=200)
    by = {r["method"]: r for r in rows}
    assert set(by) == {"adi:lr=0.02", "pplus:lr=0.005", spec}
    adi, pplus, control = by["adi:lr=0.02"], by["pplus:lr=0.005"], by[spec]
    assert (adi["total"], adi["runs"], adi["images_seen"]) == (25.0, 2, 600)
    assert pplus["delta_vs_adi"] == 50.0 and adi["delta_vs_adi"] == ""
    # paired on seed 0 only (the control has no seed 1): 100% vs ADI's 25% and P+'s 75%
    assert control["experiment"] == "mask-controls" and control["runs"] == 1
    assert control["delta_vs_adi"] == 75.0 and control["delta_vs_pplus"] == 25.0
    assert abs(control["kept_share"] - 0.1667) < 1e-3 and control["cpu_minutes"] == 2.0
    assert adi["kept_share"] == 0.1225
    assert json.loads((out / "adi-trial" / "kept.json").read_text())  # kept survives the learned/ folder


def test_csv_has_the_issue_columns(tmp_path):
    out, _ = _results(tmp_path)
    rows, _ = trial_table(out, n_boot=50)
    write_table(rows, out / "adi-trial")
    with (out / "adi-trial" / "table.csv").open() as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        assert len(list(reader)) == 3
    assert "mask-controls" in (out / "adi-trial" / "table.md").read_text()


def test_budget_needs_its_sweep_and_keeps_the_papers_steps(tmp_path):
    import argparse

    import pytest

    from evaluate.adi_trial import BUDGET, experiment_of, run
    from evaluate.demo import DemoSettings, demo_config

    out, _ = _results(tmp_path)
    args = argparse.Namespace(out=str(out), experiment="budget", part="b1", actions="salute", seeds="0", device="cpu",
                              world="v2b")
    with pytest.raises(SystemExit, match="budget sweep first"):
        run(args)
    for spec, images in zip(BUDGET.values(), (3000, 4000, 6000)):
        _, config = demo_config(spec, DemoSettings(images_seen=600))
        assert config.steps * config.batch_size == images
    budget = {"adi": 0.005, "pplus": 0.02}
    assert experiment_of("adi:steps=3000:lr=0.005", {"adi": 0.02}, budget) == "budget"
    assert experiment_of("adi:steps=3000:lr=0.005", {"adi": 0.02}) == "budget-sweep"
    assert experiment_of("adi:steps=3000:lr=0.001", {"adi": 0.02}, budget) == "budget-sweep"


def test_budget_table_keeps_the_budget_actions_and_pairs_within_them(tmp_path):
    from evaluate.adi_trial import budget_report, budget_table

    out, _ = _results(tmp_path)
    (out / "adi-trial" / "budget_lr.json").write_text(json.dumps({"action": "salute", "lr": {"adi": 0.005, "pplus": 0.02}}))
    budget_adi = with_rate(EXPERIMENTS["budget"][0], {"adi": 0.005})
    assert budget_adi == "adi:steps=3000:lr=0.005"
    part = out / "adi-trial" / "parts" / "b1"
    part.mkdir(parents=True)
    budget = [with_rate(s, {"adi": 0.005, "pplus": 0.02}) for s in EXPERIMENTS["budget"]]
    # salute: every budget row on seed 1, the budget ADI hitting 2 of 4 slots; cheer: the budget ADI alone (a part
    # still running), so cheer is left out
    rows = {m: _record([[1, 1], [1, 1], [1, 0], [1, 0]], [1] * 4) for m in budget}
    (part / "demo.json").write_text(json.dumps(_report(
        {"salute": rows, "cheer": {budget_adi: _record([[1, 1]] * 4, [1] * 4)}}, budget, [1])))
    report = budget_report(out)
    assert list(report["results"]) == ["salute"]
    assert set(report["results"]["salute"]) == {*budget, "adi:lr=0.02", "pplus:lr=0.005"}  # the control is not a budget row
    text = budget_table(out, n_boot=100)
    assert (out / "adi-trial" / "budget.md").read_text() == text
    # paired on seed 1, the only seed both hold: P+ 75% against the budget ADI's 50%
    pplus_row = next(line for line in text.split("paired against adi:steps=3000")[1].splitlines()
                     if line.startswith("| pplus:lr=0.005"))
    assert "+25.0% [" in pplus_row and "(4 paired images)" in pplus_row


def test_budget_table_waits_for_a_seed_until_it_covers_every_budget_action(tmp_path):
    from evaluate.adi_trial import budget_report

    out, _ = _results(tmp_path)
    (out / "adi-trial" / "budget_lr.json").write_text(json.dumps({"action": "salute", "lr": {"adi": 0.005, "pplus": 0.02}}))
    budget = [with_rate(s, {"adi": 0.005, "pplus": 0.02}) for s in EXPERIMENTS["budget"]]
    for name, action in (("b1", "salute"), ("b2", "cheer")):  # seed 0 of every budget row on both actions
        (out / "adi-trial" / "parts" / name).mkdir(parents=True)
        rows = {m: _full([[1, 0]] * 4, [0] * 4) for m in budget}
        (out / "adi-trial" / "parts" / name / "demo.json").write_text(json.dumps(_report({action: rows}, budget, [0])))
    part = out / "adi-trial" / "parts" / "b3"  # seed 1 on salute only so far: every slot a hit
    part.mkdir()
    rows = {m: _full([[1, 1]] * 4, [1] * 4) for m in budget}
    (part / "demo.json").write_text(json.dumps(_report({"salute": rows}, budget, [1])))
    report = budget_report(out)
    assert set(report["results"]) == {"salute", "cheer"}
    assert all(report["results"][a][m]["seeds"] == [0] * 4 for a in ("salute", "cheer") for m in budget)
    rows = {m: _full([[1, 1]] * 4, [1] * 4) for m in budget}  # seed 1 reaches cheer too: it joins
    (out / "adi-trial" / "parts" / "b4").mkdir()
    (out / "adi-trial" / "parts" / "b4" / "demo.json").write_text(json.dumps(_report({"cheer": rows}, budget, [1])))
    report = budget_report(out)
    assert all(sorted(set(report["results"][a][m]["seeds"])) == [0, 1] for a in ("salute", "cheer") for m in budget)


def test_v3_reads_and_writes_its_own_folders(tmp_path):
    import argparse
    import shutil

    import pytest

    from evaluate.adi_trial import folders, run

    out, spec = _results(tmp_path)
    with pytest.raises(SystemExit, match="world-v3-sweep"):
        trial_table(out, n_boot=50, world="v3")  # v2b's folders are never read for v3
    for v2b, v3 in zip(folders(out), folders(out, "v3")):
        assert v3.name == v2b.name.replace("world", "world-v3") if "world" in v2b.name else v3.name == "adi-trial-v3"
        shutil.move(v2b, v3)
    rows, _ = trial_table(out, n_boot=50, world="v3")
    assert {r["method"] for r in rows} == {"adi:lr=0.02", "pplus:lr=0.005", spec}
    assert (out / "adi-trial-v3" / "kept.json").exists() and not (out / "adi-trial").exists()
    args = argparse.Namespace(out=str(out), experiment="budget", part="b1", actions="salute", seeds="0", device="cpu",
                              world="v3")
    with pytest.raises(SystemExit, match="adi-trial-v3.*--world v3"):
        run(args)


def test_budget_sweep_parts_by_learner_add_up(tmp_path, monkeypatch):
    import argparse

    import pytest

    import evaluate.adi_trial as T

    out, _ = _results(tmp_path)
    ran = []

    def fake_run_demo(s, folder, resume):
        ran.append(s.methods)
        # each learner's middle rate wins
        return {"results": {"salute": {m: {"total": 0.5 if "lr=0.005" in m else 0.1, "action": 0.5} for m in s.methods}}}

    monkeypatch.setattr(T, "run_demo", fake_run_demo)
    monkeypatch.setattr(T, "write_tables", lambda report, folder: None)
    for learners in ("adi", "pplus,textual-inversion"):
        T.run(argparse.Namespace(out=str(out), experiment="budget-sweep", part="bs", actions="salute", seeds="0",
                                 device="cpu", world="v2b", learners=learners))
    assert all(m.startswith("adi:") for m in ran[0]) and len(ran[0]) == 3 and len(ran[1]) == 6
    chosen = json.loads((out / "adi-trial" / "budget_lr.json").read_text())
    assert chosen == {"action": "salute", "lr": {"adi": 0.005, "pplus": 0.005, "textual-inversion": 0.005}}
    with pytest.raises(SystemExit, match="--learners dreambooth"):
        T.run(argparse.Namespace(out=str(out), experiment="budget-sweep", part="bs", actions="salute", seeds="0",
                                 device="cpu", world="v2b", learners="dreambooth"))


def test_rows_carry_both_leakage_columns_on_v3_and_leave_context_empty_on_v2b(tmp_path):
    out, spec = _results(tmp_path)
    rows, _ = trial_table(out, n_boot=50)
    by = {r["method"]: r for r in rows}
    # the hand-made report has no animal slots and no context judgements (v2b's real ones have animal slots only)
    assert by[spec]["context_leak"] == "" and by[spec]["animals_drawn_human"] == ""
    # a v3 report: context judged on the control's slots 1, 2 and 4 (slot 3 not counted: None), leaked on 1 and 4
    path = out / "adi-trial" / "parts" / "c1" / "demo.json"
    part = json.loads(path.read_text())
    record = part["results"]["salute"][spec]
    record.update(leaks=[[0, 1, 1], [0, 0, 0], [None, None, None], [1, 0, 1]], animal_slots=4, animals_drawn_human=1)
    path.write_text(json.dumps(part))
    rows, _ = trial_table(out, n_boot=50)
    row = {r["method"]: r for r in rows}[spec]
    assert row["animals_drawn_human"] == 25.0
    assert abs(row["context_leak"] - 200 / 3) < 1e-6  # 2 of the 3 counted slots
    assert 0 <= row["context_leak_ci_low"] <= row["context_leak"] <= row["context_leak_ci_high"] <= 100
    write_table(rows, out / "adi-trial")
    line = next(x for x in (out / "adi-trial" / "table.md").read_text().splitlines() if f"| {spec} |" in x)
    assert line.endswith(f"| 25.0% | 66.7% [{row['context_leak_ci_low']:.1f}, {row['context_leak_ci_high']:.1f}] |")


def test_a_seed_run_on_some_actions_only_waits_out_of_the_pooled_rows(tmp_path):
    out, spec = _results(tmp_path)
    table = json.loads((out / "world-table" / "demo.json").read_text())
    table["results"]["sit"] = table["results"]["salute"]
    (out / "world-table" / "demo.json").write_text(json.dumps(table))
    parts = out / "adi-trial" / "parts"

    c1 = json.loads((parts / "c1" / "demo.json").read_text())  # its salute seed 0, every slot hit
    c1["results"]["salute"][spec] = _full([[1, 1]] * 4, [0] * 4)
    (parts / "c1" / "demo.json").write_text(json.dumps(c1))
    # seed 0 of the control on sit too (salute's is part c1); seed 1 on salute only, hitting nothing
    sit = _report({"sit": {spec: _full([[1, 0]] * 4, [0] * 4)}}, [spec], [0], {f"sit/{spec}/seed0": 60.0})
    late = _report({"salute": {spec: _full([[0, 0]] * 4, [1] * 4)}}, [spec], [1], {f"salute/{spec}/seed1": 60.0})
    for name, rep in (("c2", sit), ("c3", late)):
        (parts / name).mkdir()
        (parts / name / "demo.json").write_text(json.dumps(rep))
    control = {r["method"]: r for r in trial_table(out, n_boot=50)[0]}[spec]
    assert control["runs"] == 2 and control["total"] == 50.0 and control["cpu_minutes"] == 3.0  # seed 0 only
    # once seed 1 has run on sit too, it counts
    rep = _report({"sit": {spec: _full([[1, 1]] * 4, [1] * 4)}}, [spec], [1], {f"sit/{spec}/seed1": 60.0})
    (parts / "c4").mkdir()
    (parts / "c4" / "demo.json").write_text(json.dumps(rep))
    control = {r["method"]: r for r in trial_table(out, n_boot=50)[0]}[spec]
    assert control["runs"] == 4 and control["total"] == 50.0
