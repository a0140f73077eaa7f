"""Every method on a tiny random SDXL pipeline (two text encoders, pooled embedding, 11 cross-attention layers).

The pipeline (``actionbench.sdxl.build_sdxl_pipeline``: 32 px images, 4 x 8 x 8 latents,
both tokenizers with the real CLIP vocabulary) is built once per module; methods change
pipelines in place, so each test works on a deep copy.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import small_action, tiny_pipe
from safetensors.torch import load_file

import methods
from actionbench.bench import load_action
from actionbench.errors import ActionBenchError
from actionbench.sdxl import build_sdxl_pipeline
from methods.adi.functional import drop_count
from methods.layerwise import cross_attention_layers
from methods.tokens import TextEncoders

FAST = dict(steps=2, checkpoint_every=100)
PRIOR = dict(num_class_images=2, class_sample_steps=2)
ADI_FAST = dict(action_different_steps=0)  # the action folder carries action-different images

ROWS = [
    ("sd", "sd", {}),
    ("controlnet", "controlnet", {}),  # the tiny SDXL ControlNet's folder is filled in by the test
    ("dreambooth", "dreambooth", PRIOR),
    ("dreambooth-lora", "dreambooth", {**PRIOR, "lora": True}),
    ("textual-inversion", "textual-inversion", {}),
    ("reversion", "reversion", {}),
    ("custom-diffusion", "custom-diffusion", PRIOR),
    ("pplus", "pplus", {"batch_size": 2}),
    ("adi", "adi", ADI_FAST),
    ("adi-single-token", "adi", {**ADI_FAST, "layerwise": False}),
]


@pytest.fixture(scope="module")
def base():
    pipe = build_sdxl_pipeline()
    pipe.model_name = "tiny-sdxl-0"
    return pipe


@pytest.fixture(scope="module")
def action_dir(tmp_path_factory):
    return small_action(tmp_path_factory.mktemp("sdxl_action"))  # 3 handstands + action-different images


@pytest.fixture(scope="module")
def action(action_dir):
    return load_action(action_dir)


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sdxl")


@pytest.fixture(scope="module")
def tiny_controlnet(base, shared_dir):
    from diffusers import ControlNetModel

    torch.manual_seed(0)
    folder = shared_dir / "tiny-sdxl-controlnet"
    # Two downsamplings in the conditioning embedding: the tiny VAE's factor 4 (SDXL's: 3, factor 8).
    ControlNetModel.from_unet(base.unet, conditioning_embedding_out_channels=(8, 8, 8)).save_pretrained(folder)
    return str(folder)


def expected_layers(unet) -> int:
    """Cross-attention layers from the UNet's config: attention levels x resnets x transformer layers."""
    cfg = unet.config
    per_level = list(cfg.transformer_layers_per_block)
    down = sum(cfg.layers_per_block * n for kind, n in zip(cfg.down_block_types, per_level) if "CrossAttn" in kind)
    up = sum((cfg.layers_per_block + 1) * n for kind, n in zip(cfg.up_block_types, reversed(per_level)) if "CrossAttn" in kind)
    return down + per_level[-1] + up


def images_equal(a, b, tolerance: int = 2) -> bool:
    diff = [np.abs(np.asarray(x, np.int16) - np.asarray(y, np.int16)).max() for x, y in zip(a, b)]
    return len(a) == len(b) and max(diff) <= tolerance


# -- the pipeline and its encoding ------------------------------------------------------------


def test_tiny_sdxl_topology(base):
    from diffusers import StableDiffusionXLPipeline

    assert isinstance(base, StableDiffusionXLPipeline)
    layers = cross_attention_layers(base.unet)
    assert len(layers) == expected_layers(base.unet) == 11  # not SD's 16: counted from the model
    assert [n.split(".")[0] for n in layers] == ["down_blocks"] * 3 + ["mid_block"] * 2 + ["up_blocks"] * 6
    text = TextEncoders(base)
    assert text.sdxl and text.widths == [32, 48] and base.unet.config.cross_attention_dim == 80
    assert len(base.tokenizer) == len(base.tokenizer_2) == 49408
    assert base.tokenizer_2.pad_token == "!" and base.tokenizer.pad_token == "<|endoftext|>"
    assert base.unet.config.addition_embed_type == "text_time"


def test_our_encoding_is_the_sdxl_pipelines(base):
    """One function encodes for training and generation: the same tensors as diffusers' encode_prompt."""
    text = TextEncoders(base)
    prompts = ["a panda doing a handstand", "Batman in a park"]
    with torch.no_grad():
        states, pooled = text.encode(text.tokenize(prompts))
        theirs, _, theirs_pooled, _ = base.encode_prompt(prompts, device="cpu", do_classifier_free_guidance=False)
    assert states.shape == (2, 77, 80) and pooled.shape == (2, 48)
    torch.testing.assert_close(states, theirs)
    torch.testing.assert_close(pooled, theirs_pooled)


def test_load_pipeline_reads_an_sdxl_folder(base, tmp_path):
    from diffusers import StableDiffusionXLPipeline

    from actionbench.models import load_pipeline

    base.save_pretrained(tmp_path / "sdxl")
    pipe = load_pipeline(str(tmp_path / "sdxl"))
    assert isinstance(pipe, StableDiffusionXLPipeline)
    assert torch.equal(pipe.unet.conv_in.weight, base.unet.conv_in.weight)
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"


# -- every method learns and generates ------------------------------------------------------


def test_table_covers_every_method():
    assert {m for _, m, _ in ROWS} == set(methods.available())


def expected_keys(method: str, config, base) -> set[str] | None:
    layers = [n[: -len(".processor")] for n in cross_attention_layers(base.unet)]
    if method == "sd":
        return set()
    if method == "dreambooth" and not config.lora:
        return {"unet." + n for n, _ in base.unet.named_parameters()}
    if method == "custom-diffusion":
        return {"clip_l", "clip_g"} | {f"unet.{a}.{p}.weight" for a in layers for p in ("to_k", "to_v")}
    if method in ("textual-inversion", "reversion", "pplus", "adi"):
        return {"clip_l", "clip_g"}  # diffusers' SDXL textual-inversion layout
    return None


@pytest.mark.parametrize("row,method,overrides", ROWS, ids=[r[0] for r in ROWS])
def test_learn_and_generate_on_sdxl(row, method, overrides, base, action, shared_dir, tiny_controlnet, tmp_path):
    cls = methods.get_method(method)
    if method == "controlnet":
        overrides = {**overrides, "controlnet": tiny_controlnet, "pose_resolution": 64, "detector": "mediapipe"}
    config = cls.Config(**{**(FAST if cls.Config().steps else {}), **overrides})
    pipe = copy.deepcopy(base)
    out = tmp_path / f"{row}.safetensors"
    methods.learn(pipe, action, method, config, out=out, work_dir=shared_dir / "cache", progress=False)

    learned = methods.LearnedAction.load(out)
    assert learned.method == method and learned.fingerprint["family"] == "sdxl"
    want = expected_keys(method, config, base)
    keys = set(learned.tensors)
    if want is not None:
        assert keys == want
    elif method == "dreambooth":
        assert keys and all(k.startswith("unet.") and (".lora_A." in k or ".lora_B." in k) for k in keys)
    elif method == "controlnet":
        assert keys == {f"pose.{k}" for k in learned.extra["poses"]} and keys
    if "clip_l" in keys:
        layers = len(cross_attention_layers(base.unet)) if getattr(config, "layerwise", False) else 1
        assert learned.tensors["clip_l"].shape == (layers, 32) and learned.tensors["clip_g"].shape == (layers, 48)

    images = methods.generate(pipe, learned, "A panda {}", n=1, steps=2)
    assert len(images) == 1 and images[0].size == (32, 32)
    again = methods.generate(copy.deepcopy(base), methods.LearnedAction.load(out), "A panda {}", n=1, steps=2)
    assert images_equal(images, again), "a fresh pipeline with the saved file draws other images"


# -- layer-wise identifiers and ADI on SDXL ----------------------------------------------------


def setup_adi(pipe, action_dir, tmp_path, **kw):
    cfg = methods.get_method("adi").Config(**{**FAST, **ADI_FAST, **kw})
    m = methods.get_method("adi")(pipe, load_action(action_dir), cfg)
    m.setup(tmp_path / "cache")
    return m


@pytest.mark.parametrize("part", ["clip_l", "clip_g"])
def test_changing_layer_l_token_changes_only_layer_l_key_value_input(base, action_dir, tmp_path, part):
    pipe = copy.deepcopy(base)
    m = setup_adi(pipe, action_dir, tmp_path)
    names = [n.rsplit(".processor", 1)[0] for n in cross_attention_layers(pipe.unet)]
    assert m.vectors.shape == (len(names), 80)
    modules = dict(pipe.unet.named_modules())
    seen = {}
    hooks = [
        modules[n].to_k.register_forward_hook(lambda mod, inp, out, n=n: seen.__setitem__(n, inp[0].detach().clone()))
        for n in names
    ]

    def kv_inputs(vectors):
        seen.clear()
        with torch.no_grad():
            states, pooled = m.encode_text(m.ids[:1], vectors[None])
            assert states.shape == (1, len(names) * 77, 80)
            m.predict(torch.zeros(1, 4, 8, 8), torch.tensor([10]), states, pooled)
        return dict(seen)

    channels = slice(0, 32) if part == "clip_l" else slice(32, 80)  # one encoder's half of v_l
    before = kv_inputs(m.vectors.detach())
    for layer in (0, 4, len(names) - 1):
        changed = m.vectors.detach().clone()
        changed[layer, channels] += 1.0
        after = kv_inputs(changed)
        differs = [not torch.equal(before[n], after[n]) for n in names]
        assert differs == [i == layer for i in range(len(names))], (layer, differs)
    for h in hooks:
        h.remove()


@pytest.mark.parametrize("same_noise", [True, False])
def test_fused_gradients_equal_the_naive_three_pass_reference(base, action_dir, tmp_path, same_noise):
    m = setup_adi(copy.deepcopy(base), action_dir, tmp_path, batch_size=2, same_noise=same_noise)
    gen = torch.Generator().manual_seed(3)
    anchor, latents = m.sample_triples(gen)
    noise, t = m.triple_noise(gen, latents)
    g_fused, l_fused = m.triple_gradients(m.ids[anchor], latents, noise, t)
    g_naive, l_naive = m.triple_gradients_naive(m.ids[anchor], latents, noise, t)
    assert g_fused.shape == (2, 3, 11, 80)
    torch.testing.assert_close(l_fused, l_naive, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_fused, g_naive, rtol=1e-4, atol=1e-7)
    assert g_fused[..., :32].abs().sum() > 0 and g_fused[..., 32:].abs().sum() > 0  # both encoders learn
    assert not torch.allclose(g_fused[:, 0], g_fused[:, 2])


@pytest.mark.parametrize("mask", ["context-only", "action-only"])
def test_masks_are_per_text_encoder(base, action_dir, tmp_path, mask):
    """Each layer drops round(beta * w) channels of EACH encoder's slice, not beta * (w1 + w2) overall."""
    m = setup_adi(copy.deepcopy(base), action_dir, tmp_path, mask=mask, beta=0.6)
    g = torch.randn(3, 11, 80, generator=torch.Generator().manual_seed(0))
    g[:, :, 32:] *= 100.0  # encoder 2's gradients far larger: a joint ranking would drop only from one side
    kept = m.mask(g[0], g[1], g[2], torch.Generator().manual_seed(0))
    assert kept.shape == (11, 80)
    assert ((~kept[:, :32]).sum(-1) == drop_count(32, 0.6)).all()
    assert ((~kept[:, 32:]).sum(-1) == drop_count(48, 0.6)).all()


# -- files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdxl_ti(base, action, shared_dir):
    out = shared_dir / "ti-sdxl.safetensors"
    cfg = methods.get_method("textual-inversion").Config(steps=1, lr=1e-2, batch_size=1)
    methods.learn(copy.deepcopy(base), action, "textual-inversion", cfg, out=out, progress=False)
    return out


def test_textual_inversion_file_loads_in_diffusers_sdxl_loader(base, sdxl_ti):
    """diffusers' documented SDXL recipe: clip_l into text_encoder/tokenizer, clip_g into the second pair."""
    state = load_file(str(sdxl_ti))
    assert set(state) == {"clip_l", "clip_g"}
    fresh = copy.deepcopy(base)
    fresh.load_textual_inversion(state["clip_l"], token="<A>", text_encoder=fresh.text_encoder, tokenizer=fresh.tokenizer)
    fresh.load_textual_inversion(state["clip_g"], token="<A>", text_encoder=fresh.text_encoder_2, tokenizer=fresh.tokenizer_2)
    for tok, te, key in ((fresh.tokenizer, fresh.text_encoder, "clip_l"), (fresh.tokenizer_2, fresh.text_encoder_2, "clip_g")):
        row = te.get_input_embeddings().weight[tok.convert_tokens_to_ids("<A>")]
        assert torch.allclose(row, state[key][0])
    with torch.no_grad():
        theirs, _, theirs_pooled, _ = fresh.encode_prompt("A panda <A>", device="cpu", do_classifier_free_guidance=False)
    learned = methods.LearnedAction.load(sdxl_ti)
    ours, ours_pooled = methods.get_method("textual-inversion").apply(copy.deepcopy(base), learned).encode(["A panda <A>"])
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_pooled, theirs_pooled, atol=1e-5, rtol=1e-5)


def test_learned_file_round_trip(base, sdxl_ti, tmp_path):
    learned = methods.LearnedAction.load(sdxl_ti)
    fp = learned.fingerprint
    assert fp["family"] == "sdxl" and fp["text_encoder_widths"] == [32, 48] and fp["token_width"] == 80
    assert len(fp["cross_attention_layers"]) == 11 and learned.extra["token"] == "<A>"
    copy_path = learned.save(tmp_path / "copy.safetensors")
    again = methods.LearnedAction.load(copy_path)
    assert again.fingerprint == fp and all(torch.equal(again.tensors[k], learned.tensors[k]) for k in learned.tensors)
    learned.check_compatible(copy.deepcopy(base))  # same model: accepted


def test_sd21_file_is_refused_on_sdxl_with_the_reason(base, action, sdxl_ti, tmp_path):
    out = tmp_path / "ti-sd2.safetensors"
    cfg = methods.get_method("textual-inversion").Config(steps=1, batch_size=1)
    methods.learn(tiny_pipe("sd2"), action, "textual-inversion", cfg, out=out, progress=False)
    sd_file = methods.LearnedAction.load(out)
    with pytest.raises(ActionBenchError) as err:
        methods.generate(copy.deepcopy(base), sd_file, "A panda {}", n=1, steps=1)
    msg = str(err.value)
    assert str(out) in msg  # which file
    assert "learned for an SD 1.x/2.x model (token width 32, 16 cross-attention layers), 'tiny-sd2-0'" in msg
    assert "an SDXL model (text encoders 32 + 48 wide, 11 cross-attention layers), 'tiny-sdxl-0'" in msg
    assert "--model tiny-sd2-0" in msg
    # and the other way round
    with pytest.raises(ActionBenchError, match="learned for an SDXL model .* cannot be used with an SD 1.x/2.x model"):
        methods.generate(tiny_pipe("sd2"), methods.LearnedAction.load(sdxl_ti), "A panda {}", n=1, steps=1)


def test_documented_sdxl_sizes():
    """The counts docs/models.md gives for SDXL base 1.0, from its real UNet config (built on the meta device).

    The config is the one `actionbench speed --model sdxl-base` builds (evaluate/configs/sdxl-base.json):
    one copy of SDXL's published architecture in the repository.
    """
    from pathlib import Path

    from diffusers import UNet2DConditionModel

    from evaluate.speed import load_arch
    from methods.custom_diffusion import key_value_names
    from methods.weights import LORA_TARGETS

    config = {k: v for k, v in load_arch("sdxl")["unet"].items() if not k.startswith("_")}
    assert config["transformer_layers_per_block"] == [1, 2, 10] and config["cross_attention_dim"] == 2048
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
    layers = len(cross_attention_layers(unet))
    assert layers == expected_layers(unet) == 70
    kv = sum(unet.get_parameter(n).numel() for n in key_value_names(unet))
    lora = sum(
        4 * (m.in_features + m.out_features)
        for n, m in unet.named_modules()
        if isinstance(m, torch.nn.Linear) and n.endswith(LORA_TARGETS)
    )
    full = sum(p.numel() for p in unet.parameters())
    doc = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    for number in (layers * 2048, kv + 2048, lora, full):
        assert f"{number:,}" in doc, f"{number:,} not in docs/models.md"


def test_adi_makes_action_different_images_with_an_sdxl_lora_and_leaves_weights_bit_identical(base, tmp_path):
    pipe = copy.deepcopy(base)
    modules = ("unet", "text_encoder", "text_encoder_2", "vae")
    before = {f"{m}.{k}": v.clone() for m in modules for k, v in getattr(pipe, m).state_dict().items()}
    action = load_action(small_action(tmp_path, n=2, with_different=False))
    cfg = methods.get_method("adi").Config(
        **FAST, action_different_steps=1, action_different_sample_steps=2, action_different_phrases=["stands", "waves"]
    )
    learned = methods.learn(pipe, action, "adi", cfg, work_dir=tmp_path / "cache", progress=False)
    made = sorted((tmp_path / "cache" / "action_different").glob("*/*/*.png"))
    assert [p.name for p in made] == ["stands.png", "waves.png"] * 2
    after = {f"{m}.{k}": v for m in modules for k, v in getattr(pipe, m).state_dict().items()}
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert learned.tensors["clip_l"].shape == (11, 32) and not torch.equal(learned.tensors["clip_g"][0], learned.tensors["clip_g"][1])
