"""The baselines' pieces: ReVersion's equations, prior preservation, pose skeletons, file formats, doc sizes."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import methods
from actionbench.bench import load_action, open_image
from actionbench.models import build_pipeline
from methods.reversion import importance_weights, sample_timesteps, steering_loss
from methods.weights import prior_preservation_loss

HANDSTAND = Path(__file__).resolve().parents[2] / "shared" / "ActionBench" / "handstand"  # read only
DOC = Path(__file__).resolve().parents[1] / "docs" / "methods.md"


# -- ReVersion ----------------------------------------------------------------------


def test_importance_weights_match_the_formula():
    T, alpha = 1000, 0.5
    w = importance_weights(T, alpha)
    f = [(1 - alpha * math.cos(math.pi * t / T)) / T for t in range(T)]
    expected = torch.tensor(f) / sum(f)
    assert torch.allclose(w, expected.float(), atol=1e-9)
    assert abs(float(w.sum()) - 1) < 1e-5 and w[-1] > w[0] * 2.9  # (1+a)/(1-a) = 3 at a = 0.5


def test_importance_sampling_prefers_large_t():
    t = sample_timesteps(importance_weights(1000, 0.5), 20000, torch.Generator().manual_seed(0))
    assert float((t >= 500).float().mean()) > 0.6  # uniform: 0.5; f gives 0.5 + 1/pi ~ 0.66


def test_steering_loss_is_infonce():
    token = torch.tensor([1.0, 0.0])
    pos, neg = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[-1.0, 0.0]])
    tau = 0.5
    s = torch.tensor([1.0, 0.0, -1.0]) / tau
    expected = -torch.log(s[:2].exp().sum() / s.exp().sum())
    assert torch.allclose(steering_loss(token, pos, neg, tau), expected)
    # pulling the token towards the positives lowers the loss
    assert steering_loss(torch.tensor([1.0, 1.0]), pos, neg, tau) < steering_loss(torch.tensor([-1.0, 0.1]), pos, neg, tau)


def test_prior_preservation_loss():
    losses = torch.tensor([1.0, 3.0, 10.0, 20.0])
    assert float(prior_preservation_loss(losses, 2, 0.5)) == pytest.approx(2.0 + 0.5 * 15.0)
    assert float(prior_preservation_loss(losses[:2], 2, 0.5)) == pytest.approx(2.0)


# -- poses ---------------------------------------------------------------------------


def test_mediapipe_skeletons_of_handstands():
    pytest.importorskip("mediapipe")
    from actionbench.pose_drawing import COLORS, pose_image

    if not HANDSTAND.is_dir():
        pytest.skip(f"ActionBench not found at {HANDSTAND}")
    drawn = 0
    for path in sorted(HANDSTAND.glob("*.jpg"))[:3]:
        skeleton = pose_image(open_image(path), 128, "mediapipe")
        if skeleton is None:
            continue
        a = np.asarray(skeleton)
        assert a.shape == (128, 128, 3)
        assert 0.005 < (a.max(-1) > 0).mean() < 0.5  # a skeleton, not an empty or filled canvas
        colors = {tuple(c) for c in a.reshape(-1, 3)}
        assert len(colors & set(COLORS)) >= 5  # OpenPose joint colours
        drawn += 1
    assert drawn >= 2


def test_draw_openpose_limbs_and_joints():
    from actionbench.pose_drawing import COLORS, draw_openpose

    points = [None] * 18
    points[1], points[2] = (0.5, 0.3), (0.3, 0.3)  # neck, right shoulder: limb 1
    a = np.asarray(draw_openpose(points, 64))
    assert tuple(a[19, 19]) == COLORS[2] and tuple(a[19, 32]) == COLORS[1]  # joints in full colour
    assert tuple(a[19, 25]) == tuple(int(c * 0.6) for c in COLORS[0])  # the limb at 60%
    assert a[50, 50].sum() == 0


# -- file formats ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_ti(tmp_path_factory):
    import dataclasses

    if not HANDSTAND.is_dir():
        pytest.skip(f"ActionBench not found at {HANDSTAND}")
    pipe = build_pipeline()
    full = load_action(HANDSTAND)

    action = dataclasses.replace(full, exemplars=full.exemplars[:2])
    out = tmp_path_factory.mktemp("ti") / "ti.safetensors"
    cfg = methods.get_method("textual-inversion").Config(steps=1, lr=1e-2)
    methods.learn(pipe, action, "textual-inversion", cfg, out=out, progress=False)
    return pipe, out


def test_textual_inversion_file_loads_in_diffusers(tiny_ti):
    """diffusers' pipe.load_textual_inversion(file) reads our file and encodes prompts as we do."""
    pipe, out = tiny_ti
    learned = methods.LearnedAction.load(out)
    fresh = build_pipeline()
    fresh.load_textual_inversion(str(out))
    token_id = fresh.tokenizer.convert_tokens_to_ids("<A>")
    row = fresh.text_encoder.get_input_embeddings().weight[token_id]
    assert torch.allclose(row, learned.tensors["<A>"][0])
    theirs = fresh.encode_prompt("A panda <A>", "cpu", 1, False)[0]
    ours = methods.get_method("textual-inversion").apply(copy.deepcopy(pipe), learned)(["A panda <A>"])
    assert torch.allclose(theirs, ours, atol=1e-5)


# -- docs/methods.md sizes -----------------------------------------------------------------


def test_documented_sd21_sizes():
    """The counts docs/methods.md gives for SD 2.1-base, from its real UNet config (built on the meta device)."""
    from diffusers import UNet2DConditionModel

    from methods.custom_diffusion import key_value_names
    from methods.layerwise import cross_attention_layers
    from methods.weights import LORA_TARGETS

    with torch.device("meta"):
        unet = UNet2DConditionModel(
            sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
        )
    kv = sum(unet.get_parameter(n).numel() for n in key_value_names(unet))
    lora = sum(
        4 * (m.in_features + m.out_features)
        for n, m in unet.named_modules()
        if isinstance(m, torch.nn.Linear) and n.endswith(LORA_TARGETS)
    )
    full = sum(p.numel() for p in unet.parameters())
    assert len(cross_attention_layers(unet)) == 16
    doc = DOC.read_text()
    for number in (16 * 1024, kv + 1024, lora, full):
        assert f"{number:,}" in doc, f"{number:,} not in {DOC}"
