"""The demo's method specs and its report (a few steps on the world model)."""

import json

import pytest

from actionbench.demo import DemoSettings, _add_seed, budget_steps, compare_table, demo_config, parse_method_spec, run_demo, write_tables
from actionbench.world import render as R
from actionbench.errors import ActionBenchError


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


def test_demo_runs_a_method_with_options_and_writes_its_report(tmp_path):
    s = DemoSettings(actions=("handstand",), methods=("sd", "adi:mask=none"), steps=2, n=1, sample_steps=2)
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
    s = DemoSettings(actions=("handstand",), methods=("sd", "adi"), steps=1, n=1, sample_steps=2, learn_seeds=(0, 1))
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
    import actionbench.demo as demo

    s = DemoSettings(actions=("handstand",), methods=("sd",), steps=1, n=1, sample_steps=2)
    first = run_demo(s, tmp_path)
    assert len(list((tmp_path / "images" / "handstand" / "sd" / "seed0").glob("*.png"))) == 9

    def no_learning(*a, **k):
        raise AssertionError("a resumed run learned again")

    monkeypatch.setattr(demo, "learn_for_demo", no_learning)
    again = run_demo(s, tmp_path, resume=True)
    assert again["results"] == first["results"]
    assert (tmp_path / "handstand_grid.png").exists()  # drawn from the saved images
    with pytest.raises(ActionBenchError, match="sample_steps: 2 there, 3 now"):
        run_demo(DemoSettings(actions=("handstand",), methods=("sd",), steps=1, n=1, sample_steps=3), tmp_path, resume=True)
