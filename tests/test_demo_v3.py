"""The demo on ActionWorld v3 (issue #23): prompts avoid the exemplars' dominant context, the
v3 judge reads scene and outfit, and every report and table gets a context-leak column. A
tiny random v3-sized model stands in for the trained one."""

import json
import math
from dataclasses import replace

import pytest

from actionbench.errors import ActionBenchError
from actionbench.world import render_v3 as V
from evaluate.demo import DemoSettings, compare_table, fold_scores, leak_rates, run_demo, subject_contexts, write_tables


@pytest.fixture(scope="module")
def tiny_v3(tmp_path_factory):
    from actionbench.models import build_pipeline
    from actionbench.world.train import world_spec

    spec = replace(world_spec("v3"), unet_channels=(8, 8, 16, 16), head_dim=8, norm_groups=4, vae_channels=(8, 8, 8),
                   text_width=32, text_heads=2, text_ffn=32)
    folder = tmp_path_factory.mktemp("tiny-v3")
    build_pipeline(spec, seed=0).save_pretrained(str(folder), safe_serialization=True)
    return str(folder)


def test_v3_evaluation_contexts_avoid_the_dominant_scene_and_outfit():
    for action in V.ACTIONBENCH:
        scene, outfit = V.dominant_context(action)
        ctx = [c for si in range(len(V.SUBJECTS)) for c in subject_contexts(4, si, "v3", action)]
        assert len(ctx) == 4 * len(V.SUBJECTS)
        assert all(V.split_context(c)[0] != outfit and V.split_context(c)[1] != scene for c in ctx)
        assert len(set(ctx)) > len(V.SUBJECTS)  # subjects do not all get the same four contexts


def test_leak_rates_skip_uncounted_slots():
    r = leak_rates([[1, 0, 1], [0, None, 0], [None, None, None]])
    assert r == {"scene_leak": 0.5, "outfit_leak": 0.0, "context_leak": 0.5}
    assert math.isnan(leak_rates([])["scene_leak"])


def test_v3_demo_reports_context_leaks_per_slot_and_in_the_tables(tiny_v3, tmp_path):
    s = DemoSettings(actions=("salute",), methods=("sd", "adi:mask=none"), steps=1, n=1, sample_steps=2, world="v3",
                     model=tiny_v3, learn_seeds=(0, 1))
    report = run_demo(s, tmp_path)
    r = report["results"]["salute"]["sd"]
    assert r["n"] == 2 * len(V.SUBJECTS) and len(r["leaks"]) == r["n"] and len(r["judged_context"]) == r["n"]
    assert all(row[2] == int(bool(row[0]) or bool(row[1])) for row in r["leaks"])  # prompts never ask the dominant one
    scene, outfit = V.dominant_context("salute")
    assert r["scene_leak"] == sum(sc == scene for sc, _ in r["judged_context"]) / r["n"]
    assert r["outfit_leak"] == sum(of == outfit for _, of in r["judged_context"]) / r["n"]
    assert json.loads((tmp_path / "demo.json").read_text())["settings"]["world"] == "v3"
    write_tables(report, tmp_path)
    md = (tmp_path / "table.md").read_text()
    assert "context leak |" in md and "context leak [95% CI]" in md
    assert (tmp_path / "table.csv").read_text().splitlines()[0].endswith("n,scene_leak,outfit_leak,context_leak")
    assert "context leak" in compare_table(report, "adi:mask=none", n_boot=20)
    v2b_like = {k: v for k, v in r.items() if k not in ("leaks", "judged_context")} | {"seeds": [5] * r["n"]}
    with pytest.raises(ActionBenchError, match="two worlds"):
        fold_scores(r, v2b_like)
    with pytest.raises(ActionBenchError, match="other settings"):  # a v3 report is not resumed as a v2b one
        run_demo(replace(s, world="v2b", model=s.model), tmp_path, resume=True)


def test_a_missing_v3_model_says_how_to_make_it(monkeypatch, tmp_path):
    import actionbench.models as M

    monkeypatch.setitem(M.WORLD_MODELS, "world-v3", tmp_path / "none")
    with pytest.raises(ActionBenchError, match="world train --world v3"):
        M.resolve_model("world-v3")
    assert M.resolve_model("world-v2b") == str(M.WORLD_MODEL_DIR)
    monkeypatch.undo()
    assert M.resolve_model("world") == M.resolve_model("world-v3") == str(M.WORLD_V3_MODEL_DIR)


def test_grid_frames_leaked_images_in_red_and_says_so():
    from PIL import Image

    from evaluate.demo import LEAK_FRAME, grid

    ims = [Image.new("RGB", (64, 64), (0, 128, 0)) for _ in range(2)]
    sheet = grid({"m": ims}, 2, ["panda"], {"m": [True, False]})
    x0, y0 = 70, 14  # the grid's label width and header height
    assert sheet.getpixel((x0, y0 + 30)) == LEAK_FRAME and sheet.getpixel((x0 + 64, y0 + 30)) == (0, 128, 0)
    assert sheet.size[1] == 14 + 64 + 14  # a caption line under the grid
    plain = grid({"m": ims}, 2, ["panda"])
    assert plain.size[1] == 14 + 64 and plain.getpixel((x0, y0 + 30)) == (0, 128, 0)
    none = grid({"m": ims}, 2, ["panda"], {"m": [False, False]})
    assert none.getpixel((x0, y0 + 30)) == (0, 128, 0)


def test_world_versions_by_name_and_folder_and_the_judge_of_the_models_world():
    from actionbench.models import WORLD_MODELS, world_version
    from evaluate.config import RunConfig
    from evaluate.judges import JudgeContext, make_judge

    assert world_version("world-v2b") == "v2b" and world_version(str(WORLD_MODELS["world-v2b"])) == "v2b"
    assert world_version("world-v3") == "v3" and world_version("sd21-base") is None and world_version(None) is None
    assert world_version("world") == "v3"
    assert RunConfig(model="world-v2b").judges == ["world"] and RunConfig(model="world-v2b").judge_options == {}
    v3 = RunConfig(model="world-v3")
    assert v3.judges == ["world"] and v3.judge_options == {"world": {"version": "v3"}}
    assert RunConfig(model="sd21-base").judges == ["pose"]
    judge = make_judge("world", JudgeContext({}, ("panda",), "cpu"), version="v3")
    assert judge.version == "v3" and judge._net.has_context and judge._kind("a panda") == "panda"
    with pytest.raises(ActionBenchError, match="version='v9'"):
        make_judge("world", JudgeContext({}, ("panda",), "cpu"), version="v9")
