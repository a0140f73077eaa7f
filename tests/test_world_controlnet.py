"""ControlNet for the world model: the renders' exact skeletons, poses.json, the method with
given keypoints, and a smoke run of `world train-controlnet`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from actionbench.world import render as R
from actionbench.world.benchmark import BENCH_DIR
from actionbench.world.skeleton import COCO18, render_keypoints, render_skeleton

IDX = {name: i for i, name in enumerate(COCO18)}


def _figure_mask(subject, action, seed, size=64):
    """Pixels where a render differs from its bare background in any scene (the figure is the
    same in every scene: a colour close to one scene's background stands out in another)."""
    S = size * R.SUPERSAMPLE
    mask = np.zeros((size, size), bool)
    for context in R.CONTEXTS:
        bg, _ = R.draw_background(context, S, R._rng("scene", seed, context))
        bg = np.asarray(bg.resize((size, size), R.Image.Resampling.LANCZOS), np.float32)
        im = np.asarray(R.render(subject, action, context, seed, size), np.float32)
        mask |= np.abs(im - bg).max(axis=2) > 24
    return mask


def _seeds(mirror: bool, n: int = 2):
    return [s for s in range(40) if R.placement("man", "stand", "park", s).mirror == mirror][:n]


@pytest.mark.parametrize("mirror", [False, True])
def test_keypoints_lie_on_the_drawn_figure(mirror):
    for seed in _seeds(mirror, 1):
        for subject, action in (("man", "stand"), ("woman", "salute"), ("fox", "handstand"), ("bear", "sit"), ("boy", "meditate")):
            assert R.placement(subject, action, "night", seed).mirror == mirror
            mask = _figure_mask(subject, action, seed)
            kp = render_keypoints(subject, action, "night", seed)
            assert len(kp) == 18 and all(p is not None for p in kp)
            for name, (x, y) in zip(COCO18, kp):
                c, r = int(x * 64), int(y * 64)
                assert mask[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].any(), (subject, action, seed, name)


@pytest.mark.parametrize("mirror", [False, True])
def test_keypoints_follow_openpose_sides_and_the_handstand(mirror):
    """The person's right is on the image's left of an upright figure facing us, on its right upside down."""
    seed = _seeds(mirror, 1)[0]
    up = render_keypoints("man", "stand", "park", seed)
    assert up[IDX["r_shoulder"]][0] < up[IDX["l_shoulder"]][0] and up[IDX["r_hip"]][0] < up[IDX["l_hip"]][0]
    assert up[IDX["r_eye"]][0] < up[IDX["l_eye"]][0] and up[IDX["r_ear"]][0] < up[IDX["l_ear"]][0]
    assert up[IDX["nose"]][1] < up[IDX["neck"]][1] < up[IDX["r_hip"]][1] < up[IDX["r_ankle"]][1]
    hs = render_keypoints("man", "handstand", "park", seed)
    assert hs[IDX["r_shoulder"]][0] > hs[IDX["l_shoulder"]][0]
    assert hs[IDX["nose"]][1] > hs[IDX["neck"]][1] > hs[IDX["r_hip"]][1] > hs[IDX["r_ankle"]][1]
    # the salute's raised hand is the drawn "r" hand: on the image's right unless mirrored
    sal = render_keypoints("man", "salute", "park", seed)
    raised = min(("r_wrist", "l_wrist"), key=lambda n: sal[IDX[n]][1])
    assert (sal[IDX[raised]][0] > sal[IDX["neck"]][0]) != mirror


def test_skeleton_image_is_openpose_drawing():
    from actionbench.pose_drawing import COLORS

    a = np.asarray(render_skeleton("panda", "cheer", "night", 3))
    assert a.shape == (64, 64, 3)
    assert 0.03 < (a.max(-1) > 0).mean() < 0.5
    # joints keep their OpenPose colours after the 2x downsampling (nearly: a box filter)
    colors = a.reshape(-1, 3).astype(int)
    near = sum(bool((np.abs(colors - np.array(c)).max(1) < 40).any()) for c in COLORS)
    assert near >= 10


def test_committed_bench_ships_poses_and_loader_reads_them():
    from actionbench.bench import load_action
    from actionbench.world.benchmark import exemplar_specs

    for name in sorted(R.ACTIONBENCH):
        poses = json.loads((BENCH_DIR / name / "poses.json").read_text())
        assert sorted(poses) == [f"{i:02d}.png" for i in range(1, 11)]
    action = load_action(BENCH_DIR / "handstand", verify_images=False)
    sp = exemplar_specs("handstand")[0]
    fresh = render_keypoints(sp["subject"], "handstand", sp["context"], sp["seed"])
    got = action.exemplars[0].keypoints
    assert len(got) == 18 and np.allclose(np.array(got), np.array(fresh), atol=1e-4)
    assert all(e.keypoints is not None for e in action.exemplars)


def test_poses_json_round_trip_and_errors(tmp_path):
    from actionbench.bench import load_action
    from actionbench.errors import ActionBenchError

    folder = tmp_path / "jump"
    folder.mkdir()
    R.render("man", "jump", "park", 1).save(folder / "01.png")
    R.render("man", "jump", "park", 2).save(folder / "02.png")
    (folder / "text.json").write_text(json.dumps({"01.png": ["a man {} in a park"], "02.png": ["a man {} in a park"]}))
    kp = [[0.5, 0.25]] * 17 + [None]
    (folder / "poses.json").write_text(json.dumps({"01.png": kp}))
    action = load_action(folder)
    assert action.exemplars[0].keypoints == tuple([(0.5, 0.25)] * 17 + [None])
    assert action.exemplars[1].keypoints is None  # not every exemplar needs one
    (folder / "poses.json").write_text(json.dumps({"01.png": kp[:5]}))
    with pytest.raises(ActionBenchError, match="poses.json"):
        load_action(folder)


# -- the controlnet method with given keypoints ------------------------------------------


@pytest.fixture(scope="module")
def world_like(tmp_path_factory):
    """A tiny random pipeline, a tiny ControlNet from its UNet, and 2 World-ActionBench exemplars."""
    import dataclasses

    import torch
    from conftest import tiny_pipe
    from diffusers import ControlNetModel

    from actionbench.bench import load_action

    pipe = tiny_pipe("sd2")
    folder = tmp_path_factory.mktemp("cn") / "controlnet"
    torch.manual_seed(0)
    ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(8, 8)).save_pretrained(folder)
    full = load_action(BENCH_DIR / "handstand")
    return pipe, folder, dataclasses.replace(full, exemplars=full.exemplars[:2])


def _no_detector(monkeypatch):
    import actionbench.pose_drawing as pd

    def boom(*a, **k):
        raise AssertionError("a pose detector was called although keypoints were given")

    monkeypatch.setattr(pd, "mediapipe_keypoints", boom)
    monkeypatch.setattr(pd, "openpose_detector", boom)


def test_controlnet_uses_given_keypoints(world_like, monkeypatch, tmp_path):
    import copy

    import methods
    from actionbench.pose_drawing import given_pose_image
    from methods.controlnet import tensor_png

    pipe, folder, action = world_like
    _no_detector(monkeypatch)
    cfg = methods.get_method("controlnet").Config(controlnet=str(folder))
    out = tmp_path / "cn.safetensors"
    methods.learn(copy.deepcopy(pipe), action, "controlnet", cfg, out=out, progress=False)
    learned = methods.LearnedAction.load(out)
    assert learned.extra["pose_sources"] == {"01": "given", "02": "given"}
    e = action.exemplars[0]
    pose = tensor_png(learned.tensors["pose.01"])
    assert pose.size == (32, 32)  # pose_resolution None: the model's image size, not 512
    assert np.array_equal(np.asarray(pose), np.asarray(given_pose_image(e.image(), list(e.keypoints), 32)))
    images = methods.generate(copy.deepcopy(pipe), learned, "A panda {}", n=1, steps=2)
    assert images[0].size == (32, 32)


def test_world_pipeline_picks_the_world_controlnet(world_like, monkeypatch, tmp_path):
    import copy
    import shutil

    import actionbench.models as models
    import methods
    from actionbench.errors import ActionBenchError
    from methods.controlnet import default_controlnet

    pipe, folder, action = world_like
    _no_detector(monkeypatch)
    world = copy.deepcopy(pipe)
    with pytest.raises(ActionBenchError, match="token width 32"):  # not the world model: no default for width 32
        default_controlnet(pipe)
    world.model_name = "world-v2b"
    assert default_controlnet(world) == "world"
    cfg = methods.get_method("controlnet").Config(detector="given")
    monkeypatch.setattr(models, "WORLD_CONTROLNET_DIR", tmp_path / "missing")
    with pytest.raises(ActionBenchError, match="world train-controlnet"):
        methods.learn(world, action, "controlnet", cfg, out=tmp_path / "x.safetensors", progress=False)
    monkeypatch.setattr(models, "WORLD_CONTROLNET_DIR", folder)
    learned = methods.learn(world, action, "controlnet", cfg, out=tmp_path / "w.safetensors", progress=False)
    assert learned.extra["controlnet"] == "world"
    other = tmp_path / "other"  # a ControlNet trained beside another world model: a warning
    shutil.copytree(folder, other)
    (other / "actionworld_controlnet.json").write_text(json.dumps({"base_fingerprint": {"checksum": [1.0, 1.0]}}))
    monkeypatch.setattr(models, "WORLD_CONTROLNET_DIR", other)
    with pytest.warns(UserWarning, match="another world model"):
        methods.learn(world, action, "controlnet", cfg, out=tmp_path / "o.safetensors", progress=False)
    assert len(methods.generate(world, learned, "A panda {}", n=1, steps=1)) == 1


def test_detector_given_needs_keypoints(world_like, tmp_path):
    import dataclasses

    import methods
    from actionbench.errors import ActionBenchError

    pipe, folder, action = world_like
    bare = dataclasses.replace(action, exemplars=tuple(dataclasses.replace(e, keypoints=None) for e in action.exemplars))
    cfg = methods.get_method("controlnet").Config(controlnet=str(folder), detector="given")
    with pytest.raises(ActionBenchError, match="poses.json"):
        methods.learn(pipe, bare, "controlnet", cfg, out=tmp_path / "g.safetensors", progress=False)


# -- world train-controlnet ----------------------------------------------------------------


def test_train_controlnet_smoke_resume_and_export(tmp_path):
    """2 steps on a tiny pipeline: a checkpoint, a resume that continues the same run, an fp16 folder diffusers loads."""
    import torch
    from conftest import tiny_pipe
    from diffusers import ControlNetModel
    from safetensors.torch import load_file

    from actionbench.world.controlnet_train import CKPT, INFO, ControlNetTrainConfig, train_controlnet

    def cfg(out):
        return ControlNetTrainConfig(out=str(tmp_path / out), model="tiny", steps=2, batch=2, n_data=6, ckpt_every=1, threads=1, warmup=1)

    assert train_controlnet(cfg("a"), export_dir=None, pipe=tiny_pipe()) is None
    assert train_controlnet(cfg("b"), export_dir=None, stop_at=1, pipe=tiny_pipe()) is None
    assert len((tmp_path / "b" / "log.jsonl").read_text().splitlines()) == 1
    export = tmp_path / "exported"
    assert train_controlnet(cfg("b"), resume=True, export_dir=export, pipe=tiny_pipe()) == export
    a, b = load_file(str(tmp_path / "a" / CKPT)), load_file(str(tmp_path / "b" / CKPT))
    assert a.keys() == b.keys()
    for k in a:  # a resumed run is the uninterrupted run (up to AdamW's float rounding, as for `world train`)
        if k.startswith(("model.", "ema.")):
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    rows = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1] and all(np.isfinite(r["loss"]) for r in rows)
    assert [r["loss"] for r in rows] == [json.loads(line)["loss"] for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    model = ControlNetModel.from_pretrained(export)
    stored = load_file(str(export / "diffusion_pytorch_model.safetensors"))
    assert {v.dtype for v in stored.values()} == {torch.float16}
    assert tuple(model.config.conditioning_embedding_out_channels) == (16, 32)  # 32 px image -> 16x16 latents
    assert json.loads((export / INFO).read_text())["step"] == 2
    ema = {k[len("ema.controlnet."):]: v for k, v in b.items() if k.startswith("ema.controlnet.")}
    assert all(torch.equal(v.half(), stored[k]) for k, v in ema.items())  # the EMA weights were exported
