"""Every registered method and every ADI ablation: a few steps on a tiny SD pipeline, then generate.

For each row: learn on a copy of the tiny pipeline, check the learned file holds only
what the method should save, generate, then apply the saved file to a FRESH copy of the
base pipeline and check it draws the same images. The tiny pipeline, the ControlNet and
the caches (class images, action-different images) are built once per module.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import methods
from actionbench.bench import load_action
from actionbench.models import build_pipeline
from methods.adi.functional import STRATEGIES
from methods.layerwise import cross_attention_layers

HANDSTAND = Path(__file__).resolve().parents[2] / "shared" / "ActionBench" / "handstand"  # read only
FAST = dict(steps=2, checkpoint_every=100)
PRIOR = dict(num_class_images=2, class_sample_steps=2)
ADI_FAST = dict(action_different_steps=1, action_different_sample_steps=2, action_different_phrases=["stands", "waves"])

# (row id, method, config overrides). Every registered method appears at least once.
ROWS = [
    ("sd", "sd", {}),
    ("controlnet", "controlnet", {}),  # the tiny ControlNet's folder is filled in by the test
    ("dreambooth", "dreambooth", PRIOR),
    ("dreambooth-lora", "dreambooth", {**PRIOR, "lora": True}),
    ("textual-inversion", "textual-inversion", {}),
    ("reversion", "reversion", {}),
    ("custom-diffusion", "custom-diffusion", PRIOR),
    ("pplus", "pplus", {"batch_size": 2}),
    *[(f"adi-{mask}", "adi", {**ADI_FAST, "mask": mask}) for mask in STRATEGIES],
    ("adi-single-token", "adi", {**ADI_FAST, "layerwise": False}),
]


def test_table_covers_every_method():
    assert {m for _, m, _ in ROWS} == set(methods.available())


@pytest.fixture(scope="module")
def base():
    return build_pipeline()


@pytest.fixture(scope="module")
def action():
    # Three of the ten exemplars: every code path runs, at a third of the cost (VAE, poses, ADI's stage 3).
    if not HANDSTAND.is_dir():
        pytest.skip(f"ActionBench not found at {HANDSTAND}")
    full = load_action(HANDSTAND)
    return dataclasses.replace(full, exemplars=full.exemplars[:3])


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("methods_table")


@pytest.fixture(scope="module")
def tiny_controlnet(base, shared_dir):
    from diffusers import ControlNetModel

    torch.manual_seed(0)
    folder = shared_dir / "tiny-controlnet"
    ControlNetModel.from_unet(base.unet, conditioning_embedding_out_channels=(8, 8)).save_pretrained(folder)
    return str(folder)


def expected_keys(method: str, config, base) -> set[str] | None:
    """The tensor names a learned file of ``method`` may hold (None: checked separately)."""
    unet = dict(base.unet.named_parameters())
    layers = [n[: -len(".processor")] for n in cross_attention_layers(base.unet)]
    if method == "sd":
        return set()
    if method == "dreambooth" and not config.lora:
        return {"unet." + n for n in unet}
    if method == "custom-diffusion":
        return {config.token} | {f"unet.{a}.{p}.weight" for a in layers for p in ("to_k", "to_v")}
    if method in ("textual-inversion", "reversion", "pplus", "adi"):
        return {config.token}
    return None


def images_equal(a, b, tolerance: int = 2) -> bool:
    """Same images up to ``tolerance`` levels of 255 (CPU kernels may round differently run to run)."""
    diff = [np.abs(np.asarray(x, np.int16) - np.asarray(y, np.int16)).max() for x, y in zip(a, b)]
    return len(a) == len(b) and max(diff) <= tolerance


@pytest.mark.parametrize("row,method,overrides", ROWS, ids=[r[0] for r in ROWS])
def test_learn_and_generate(row, method, overrides, base, action, shared_dir, tiny_controlnet, tmp_path):
    cls = methods.get_method(method)
    if method == "controlnet":
        overrides = {**overrides, "controlnet": tiny_controlnet, "pose_resolution": 64, "detector": "mediapipe"}
    config = cls.Config(**{**(FAST if cls.Config().steps else {}), **overrides})
    pipe = copy.deepcopy(base)
    out = tmp_path / f"{row}.safetensors"
    methods.learn(pipe, action, method, config, out=out, work_dir=shared_dir / "cache", progress=False)

    learned = methods.LearnedAction.load(out)
    assert learned.method == method
    keys = set(learned.tensors)
    want = expected_keys(method, config, base)
    if want is not None:
        assert keys == want
    elif method == "dreambooth":  # LoRA: only its A/B matrices, on attention projections
        assert keys and all(k.startswith("unet.") and (".lora_A." in k or ".lora_B." in k) for k in keys)
    elif method == "controlnet":
        assert keys == {f"pose.{k}" for k in learned.extra["poses"]} and keys
        assert learned.extra["controlnet"] == tiny_controlnet
    if method in ("pplus", "adi"):
        width = base.text_encoder.get_input_embeddings().weight.shape[1]
        assert learned.tensors[config.token].shape == ((16 if config.layerwise else 1), width)

    images = methods.generate(pipe, learned, "A panda {}", n=1, steps=2)
    assert len(images) == 1 and images[0].size == (32, 32)
    fresh = copy.deepcopy(base)
    again = methods.generate(fresh, methods.LearnedAction.load(out), "A panda {}", n=1, steps=2)
    assert images_equal(images, again), "a fresh pipeline with the saved file draws other images"


def test_weight_changes_are_undone(base, action, shared_dir, tmp_path):
    """Generating with another file after a weight-changing one uses the base weights again."""
    pipe = copy.deepcopy(base)
    original = {k: v.clone() for k, v in base.unet.state_dict().items()}
    cfg = methods.get_method("custom-diffusion").Config(**FAST, **PRIOR)
    learned = methods.learn(pipe, action, "custom-diffusion", cfg, out=tmp_path / "cd.safetensors", work_dir=shared_dir / "cache", progress=False)
    methods.generate(pipe, learned, "A panda {}", n=1, steps=1)
    methods.weights.restore(pipe)
    state = pipe.unet.state_dict()
    assert state.keys() == original.keys()
    assert all(torch.equal(state[k], v) for k, v in original.items())
