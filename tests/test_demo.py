"""The demo's method specs and its report (a few steps on the world model)."""

import json

import pytest

from actionbench.demo import DemoSettings, parse_method_spec, run_demo, write_tables
from actionbench.errors import ActionBenchError


def test_method_spec_parses_options_as_yaml_scalars():
    assert parse_method_spec("adi") == ("adi", {})
    assert parse_method_spec("adi:mask=none:beta=0.4") == ("adi", {"mask": "none", "beta": 0.4})
    assert parse_method_spec("adi:layerwise=false") == ("adi", {"layerwise": False})
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
