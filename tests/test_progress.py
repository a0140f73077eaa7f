"""The progress of an experiment run in parts: runs done and to run, and their CPU."""

import argparse
import json

from test_demo import _record, _report
from test_world_table import _write_part

from evaluate.progress import done_runs, progress_rows, progress_table


def _parts():
    a = _report({"sit": {"adi": _record(0, [[1, 1]] * 2), "pplus": _record(0, [[1, 0]] * 2)}},
                {"sit/adi/seed0": 120.0, "sit/pplus/seed0": 60.0})
    b = _report({"sit": {"adi": _record(1, [[1, 1]] * 2)}, "jump": {"adi": _record(1, [[0, 1]] * 2)}},
                {"sit/adi/seed1": 180.0, "jump/adi/seed1": 180.0}, seeds=(1,))
    return [a, b]


def test_done_runs_reads_the_seeds_of_every_part_and_counts_a_run_once():
    a, b = _parts()
    done, cost = done_runs([a, b, b])  # the same part twice (e.g. a merged copy) counts its runs once
    assert done == {("adi", "sit"): {0, 1}, ("pplus", "sit"): {0}, ("adi", "jump"): {1}}
    assert sorted(cost["adi"]) == [120.0, 180.0, 180.0] and cost["pplus"] == [60.0]


def test_progress_rows_list_the_missing_seeds_and_estimate_from_the_learner():
    plan = [("adi", ("sit", "jump"), (0, 1, 2)), ("pplus", ("sit", "jump"), (0,)),
            ("adi:mask=none", ("sit",), (0,)), ("adi:steps=3000", ("sit",), (0,)), ("dreambooth", ("sit",), (0,))]
    rows = {r["method"]: r for r in progress_rows(plan, _parts())}
    adi = rows["adi"]
    assert (adi["planned"], adi["done"]) == (6, 3)
    assert adi["missing"] == {"sit": [2], "jump": [0, 2]}
    assert adi["cpu_min_spent"] == 8.0 and adi["cpu_min_left"] == 8.0  # 3 runs left at 160 s each
    assert rows["pplus"]["missing"] == {"jump": [0]} and rows["pplus"]["cpu_min_left"] == 1.0
    # an ablation that has not run is costed as its learner at the same steps; another budget or learner is not
    assert rows["adi:mask=none"]["cpu_min_left"] == round(160 / 60, 1)
    assert rows["adi:steps=3000"]["cpu_min_left"] is None and rows["dreambooth"]["cpu_min_left"] is None
    text = progress_table(list(rows.values()))
    assert "| adi | 3/6 | seed 2: sit; seeds 0,2: jump | 8 | 8 |" in text
    assert text.rstrip().endswith("| **all** | 4/11 | | 9 | >= 12 |")  # the unestimated rows make it a lower bound


def test_priors_inform_only_specs_whose_learner_has_not_run():
    prior = _report({"sit": {"dreambooth": _record(0, [[1, 1]] * 2), "adi": _record(0, [[1, 1]] * 2)}},
                    {"sit/dreambooth/seed0": 90.0, "sit/adi/seed0": 6000.0})
    plan = [("dreambooth:lr=0.001", ("sit",), (0, 1)), ("adi", ("sit",), (0, 1, 2)), ("adi:mask=none", ("sit",), (0,))]
    rows = {r["method"]: r for r in progress_rows(plan, _parts(), [prior])}
    assert rows["dreambooth:lr=0.001"]["cpu_min_left"] == 3.0 and rows["dreambooth:lr=0.001"]["cpu_min_spent"] == 0
    assert rows["adi"]["cpu_min_left"] == round(160 / 60, 1)  # its own runs' 160 s, not the prior's 6000 s
    assert rows["adi:mask=none"]["cpu_min_left"] == round(160 / 60, 1)  # its learner's runs here, not the prior's


def test_world_table_status_plans_fixed_methods_on_seed_0_and_reads_the_parts(tmp_path, capsys):
    from evaluate.world_table import SWEEP, status

    (tmp_path / "world-v3-sweep").mkdir()
    (tmp_path / "world-v3-sweep" / "chosen_lr.json").write_text(json.dumps({"lr": {m: 1e-3 for m in SWEEP}}))
    part = _report({"salute": {"sd": _record(0, [[1, 0]] * 2), "adi:lr=0.001": _record(1, [[1, 1]] * 2)}},
                   {"salute/sd/seed0": 30.0, "salute/adi:lr=0.001/seed1": 200.0}, seeds=(1,))
    folder = tmp_path / "world-v3-table" / "parts" / "c"
    folder.mkdir(parents=True)
    (folder / "demo.json").write_text(json.dumps(part))
    _write_part(tmp_path, "v2b-part", part)  # v2b's parts are not v3's
    text = status(argparse.Namespace(out=str(tmp_path), world="v3", methods="sd,adi", actions="salute", seeds="0,1,2"))
    assert "| sd | 1/1 | - | 0 | 0 |" in text
    assert "| adi:lr=0.001 | 1/3 | seeds 0,2: salute | 3 | 7 |" in text
    assert text == capsys.readouterr().out.rstrip("\n") + "\n"


def test_the_trial_plan_takes_the_budget_rows_once_their_rates_are_chosen(tmp_path):
    from evaluate.adi_trial import EXPERIMENTS, trial_plan
    from evaluate.world_table import SWEEP

    (tmp_path / "world-v3-sweep").mkdir()
    (tmp_path / "world-v3-sweep" / "chosen_lr.json").write_text(json.dumps({"lr": {m: 1e-3 for m in SWEEP}}))
    plan = trial_plan(tmp_path, "v3", ("salute", "sit"), (0, 1))
    assert all(actions == ("salute", "sit") and seeds == (0, 1) for _, actions, seeds in plan)
    assert [s for s, _, _ in plan][:2] == ["adi:mask=random:beta=0.875:lr=0.001", "adi:mask=uniform:beta=0.875:lr=0.001"]
    assert not any("steps=" in s for s, _, _ in plan)  # no budget rates yet: no budget rows
    (tmp_path / "adi-trial-v3").mkdir()
    (tmp_path / "adi-trial-v3" / "budget_lr.json").write_text(
        json.dumps({"action": "salute", "lr": {"adi": 1e-3, "pplus": 5e-3, "textual-inversion": 2e-2}}))
    budget = [s for s, _, _ in trial_plan(tmp_path, "v3", ("salute",)) if "steps=" in s]
    assert budget == ["adi:steps=3000:lr=0.001", "pplus:steps=500:lr=0.005", "textual-inversion:steps=3000:lr=0.02",
                      "adi:mask=none:steps=3000:lr=0.001"]
    assert len(EXPERIMENTS["budget"]) == len(budget)
