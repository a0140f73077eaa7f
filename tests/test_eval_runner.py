"""The runner end to end on a tiny model: 2 actions x 3 subjects x 2 images, resume, shards, report, CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import ACTIONBENCH

from evaluate.config import RunConfig
from evaluate.manifest import read_manifest, read_verdicts
from evaluate.runner import Processes, run

ACTIONS = ["handstand", "salute"]
SUBJECTS = ["A man", "A panda", "Batman"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Micro-sized convolutions run 20x faster on one thread than on two when the cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def micro_pipe():
    """A smaller pipeline than conftest's tiny one (16 px images): the runner test makes many."""
    from actionbench.models import PipelineSpec, build_pipeline

    pipe = build_pipeline(PipelineSpec(image_size=16, vae_channels=(4, 8), unet_channels=(8, 8, 8, 8), text_width=16,
                                       text_heads=2, text_ffn=32, text_layers=1))
    pipe.model_name = "micro"
    return pipe


def config(out, methods=None, judges=("pose",)) -> RunConfig:
    if not ACTIONBENCH.is_dir():
        pytest.skip("ActionBench not found")
    return RunConfig.from_dict(dict(
        name="t", model="micro", benchmark=str(ACTIONBENCH), out=str(out),
        methods=methods or ["sd", {"method": "textual-inversion", "label": "ti", "config": {"steps": 2, "resolution": 16}}],
        actions=ACTIONS, subjects=SUBJECTS, images_per_pair=2, steps=2, judges=list(judges)))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny"
    cfg = config(out)
    pipe = micro_pipe()
    run(cfg, pipe=pipe, log=lambda *_: None)
    return out, cfg, pipe


def test_run_makes_every_image_once(tiny_run):
    out, cfg, _ = tiny_run
    m = read_manifest(out)
    assert len(m) == 2 * 2 * 3 * 2  # methods x actions x subjects x K
    assert set(m.method) == {"sd", "ti"} and set(m.action) == set(ACTIONS) and set(m.subject) == set(SUBJECTS)
    assert all((out / p).is_file() for p in m.path)
    assert sorted(m[(m.method == "ti") & (m.action == "salute") & (m.subject == "A panda")].seed) == [0, 1]
    assert (out / "learned" / "ti" / "handstand.safetensors").is_file()
    assert (out / "manifest.csv").is_file() and (out / "verdicts.csv").is_file()


def test_pose_verdicts_cover_every_image(tiny_run):
    out, _, _ = tiny_run
    v = read_verdicts(out)
    assert len(v) == 24 and set(v.judge) == {"pose"}
    # the pose judge never judges subjects; on noise it finds nobody rather than guessing
    assert v.subject_ok.isna().all()
    assert ((v.note == "no person found") == v.action_ok.isna()).all()


def test_report_links_exemplars_and_images(tiny_run):
    out, _, _ = tiny_run
    html = (out / "report.html").read_text()
    # one section per action, then the per-image drill-down
    assert [h for h in ("<h2 id='salute'>", "<h2 id='handstand'>", "<h2 id=drilldown>") if h in html] == [
        "<h2 id='salute'>", "<h2 id='handstand'>", "<h2 id=drilldown>"]
    assert html.count("<h2 id=") == len(ACTIONS) + 1
    assert "<h2>Judges</h2>" in html and "handstand/01.jpg" in html  # exemplars linked, not copied
    assert "images/ti/salute/a_panda_1.png" in html
    assert not list(out.rglob("*.jpg"))


def test_rerun_skips_finished_work(tiny_run, monkeypatch):
    out, cfg, pipe = tiny_run
    import methods

    def boom(*a, **k):
        raise AssertionError("regenerated an image that exists")

    monkeypatch.setattr(methods, "generate", boom)
    monkeypatch.setattr(methods, "learn", boom)
    before = (out / "manifest" / "part-000.jsonl").read_text()
    run(cfg, pipe=pipe, log=lambda *_: None)
    assert (out / "manifest" / "part-000.jsonl").read_text() == before


def test_rerun_finishes_a_killed_run(tmp_path):
    cfg = config(tmp_path / "r", methods=["sd"], judges=())
    pipe = micro_pipe()
    run(cfg, pipe=pipe, log=lambda *_: None)
    shard = tmp_path / "r" / "manifest" / "part-000.jsonl"
    lines = shard.read_text().splitlines()
    shard.write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])  # killed mid-write: a torn last line
    run(cfg, pipe=pipe, log=lambda *_: None)
    m = read_manifest(tmp_path / "r")
    assert len(m) == 12 and m.image_id.is_unique


def test_processes_split_the_work_and_merge(tmp_path):
    """What `accelerate launch` does: each rank takes every other unit; shards merge."""
    cfg = config(tmp_path / "s", methods=["sd"], judges=())
    pipe = micro_pipe()
    run(cfg, pipe=pipe, processes=Processes(1, 2), log=lambda *_: None)
    first = read_manifest(tmp_path / "s")
    assert set(first.action) == {"salute"}  # rank 1 of 2: the second unit
    assert not (tmp_path / "s" / "report.html").exists()  # rank 0 has not finished: nobody merges yet
    run(cfg, pipe=pipe, processes=Processes(0, 2), log=lambda *_: None)
    m = read_manifest(tmp_path / "s")
    assert len(m) == 12 and set(m.action) == set(ACTIONS)
    assert {p.name for p in (tmp_path / "s" / "manifest").iterdir()} == {"part-000.jsonl", "part-001.jsonl"}
    assert len(pd.read_csv(tmp_path / "s" / "manifest.csv")) == 12  # the last to finish merged both shards
    assert "salute" in (tmp_path / "s" / "report.html").read_text()


def test_run_folder_refuses_other_settings(tiny_run):
    from actionbench.errors import ActionBenchError

    out, cfg, pipe = tiny_run
    other = config(out)
    other.images_per_pair = 3
    with pytest.raises(ActionBenchError, match="other settings"):
        run(other, pipe=pipe, log=lambda *_: None)


def test_config_errors_are_one_line():
    from actionbench.errors import ActionBenchError

    with pytest.raises(ActionBenchError, match="unknown setting"):
        RunConfig.from_dict({"methods": ["sd"], "imgs": 3})
    with pytest.raises(ActionBenchError, match="at least one method"):
        RunConfig.from_dict({"methods": []})
    with pytest.raises(ActionBenchError, match="unique"):
        RunConfig.from_dict({"methods": ["sd", "sd"]})
    assert RunConfig.from_dict({"methods": ["sd"], "model": "world"}).judges == ["world"]  # the default judge
    assert RunConfig.from_dict({"methods": ["sd"]}).judges == ["pose"]
    paper = RunConfig.from_yaml("paper")
    assert (paper.images_per_pair, paper.steps, paper.guidance, paper.actions, paper.subjects) == (4, 50, 7.5, None, None)


def test_cli_tables_and_judge_on_the_run(tiny_run, capsys):
    from actionbench.cli import main

    out, _, _ = tiny_run
    assert main(["tables", str(out), "--format", "csv"]) == 0
    csv = capsys.readouterr().out
    assert csv.startswith("source,method,action,question,images,n,acc,lo,hi")
    assert main(["tables", str(out / "nope")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["judge", str(out), "--judges", "pose"]) == 0  # every image judged already: nothing new
    assert "pose: 0 new verdicts" in capsys.readouterr().out
    assert main(["judge", str(out), "--judges", "nosuch"]) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 24


def test_cli_run_with_a_config_file(tmp_path, capsys):
    """`actionbench run --config FILE` on the built-in tiny model (`model: tiny`)."""
    import yaml

    from actionbench.cli import main

    if not ACTIONBENCH.is_dir():
        pytest.skip("ActionBench not found")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(dict(name="cli", model="tiny", benchmark=str(ACTIONBENCH), methods=["sd"],
                                       actions=["sit"], subjects=["A dog"], images_per_pair=1, steps=1, judges=[])))
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert "report.html" in capsys.readouterr().out
    assert len(read_manifest(tmp_path / "out")) == 1 and (tmp_path / "out" / "images" / "sd" / "sit" / "a_dog_0.png").is_file()
    assert main(["run", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "run config not found" in capsys.readouterr().err


def test_a_corrupt_image_is_left_unjudged_not_fatal(tmp_path):
    from evaluate.runner import judge_images, load_run_benchmark, resolve_subjects

    cfg = config(tmp_path / "c", methods=["sd"], judges=())
    run(cfg, pipe=micro_pipe(), log=lambda *_: None)
    m = read_manifest(tmp_path / "c")
    bad = tmp_path / "c" / m.path.iloc[3]
    bad.write_bytes(b"not a png")
    lines = []
    sets, subjects = load_run_benchmark(cfg), resolve_subjects(cfg)
    counts = judge_images(tmp_path / "c", cfg, ["pose"], sets, subjects, log=lines.append)
    assert counts == {"pose": 11}
    v = read_verdicts(tmp_path / "c")
    assert set(v.image_id) == set(m.image_id) - {m.image_id.iloc[3]}
    assert any(str(bad) in line and "corrupt" in line and "left unjudged" in line for line in lines)
    bad.unlink()  # the next pass retries what is left
    from PIL import Image

    Image.new("RGB", (16, 16)).save(bad)
    assert judge_images(tmp_path / "c", cfg, ["pose"], sets, subjects, strict=True, log=lines.append) == {"pose": 1}
