"""The shipped ActionWorld pipeline loads via --model world and draws; training is resumable and seeded."""

from dataclasses import asdict

import pytest
import torch
from safetensors.torch import load_file

from actionbench.errors import ActionBenchError
from actionbench.models import WORLD_MODEL_DIR, PipelineSpec, load_pipeline


def test_world_model_loads_and_generates():
    pipe = load_pipeline("world")
    n_cross = sum(1 for name, _ in pipe.unet.named_modules() if name.endswith("attn2"))
    assert n_cross == 16
    assert pipe.tokenizer.vocab_size == 49408 and type(pipe.scheduler).__name__ == "DDIMScheduler"
    g = torch.Generator().manual_seed(0)
    im = pipe("a panda squats in a park", num_inference_steps=4, guidance_scale=7.5, generator=g, height=64, width=64).images[0]
    assert im.size == (64, 64)
    size = sum(p.stat().st_size for p in WORLD_MODEL_DIR.rglob("*") if p.is_file())
    assert size < 30 * 2**20


def test_training_is_resumable_and_reproducible(tmp_path):
    from actionbench.world.train import train

    def cfg(out, steps):
        return _tiny_cfg(out, steps, n_data=16, ckpt_every=2)

    train(cfg(tmp_path / "a", 4), export_dir=None)
    train(cfg(tmp_path / "b", 4), export_dir=None, stop_at=2)  # interrupted after 2 steps
    train(cfg(tmp_path / "b", 4), resume=True, export_dir=None)
    a = load_file(str(tmp_path / "a" / "unet.ckpt.safetensors"))
    b = load_file(str(tmp_path / "b" / "unet.ckpt.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        if k.startswith(("model.", "ema.")):
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert (tmp_path / "a" / "log.jsonl").read_text().count("\n") == 4


def _tiny_cfg(out, steps, **kw):
    from actionbench.world.train import TrainConfig

    spec = PipelineSpec(image_size=64, vae_channels=(8, 8, 8), unet_channels=(8, 8, 16, 16), head_dim=8, norm_groups=4,
                        text_width=16, text_layers=1, text_heads=2, text_ffn=32)
    settings = dict(out=str(out), steps=steps, batch=4, vae_steps=2, vae_batch=2, n_data=300, decoder_steps=2,
                    ckpt_every=100, spec=asdict(spec))
    return TrainConfig(**{**settings, **kw})


def test_dataset_does_not_depend_on_worker_count(tmp_path):
    from actionbench.world.train import build_dataset, _spec
    from actionbench.models import build_pipeline

    cfg = _tiny_cfg(tmp_path, 1)
    pipe = build_pipeline(_spec(cfg), seed=0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    lat1, caps1, labels1 = build_dataset(pipe, cfg, tmp_path / "a", workers=1)
    lat2, caps2, labels2 = build_dataset(pipe, cfg, tmp_path / "b", workers=2)
    assert len(caps1) == 300 and caps1 == caps2 and labels1 == labels2
    torch.testing.assert_close(lat1, lat2)


def test_time_budget_stops_with_a_checkpoint_and_exports_that_step(tmp_path):
    import json

    from safetensors import safe_open

    from actionbench.world.train import train

    out = train(_tiny_cfg(tmp_path / "run", 10_000), export_dir=tmp_path / "model", time_budget_s=0.0)
    with safe_open(str(tmp_path / "run" / "unet.ckpt.safetensors"), "pt") as f:
        step = int(f.metadata()["step"])
    assert step == 1  # the budget is checked after every step: 0 s means one step
    assert json.loads((out / "actionworld.json").read_text())["step"] == 1


def test_refine_exported_decoder_changes_only_the_decoder(tmp_path):
    import json

    from diffusers import AutoencoderKL

    from actionbench.world.train import refine_exported_decoder, train

    model = train(_tiny_cfg(tmp_path / "run", 2), export_dir=tmp_path / "model")
    before = AutoencoderKL.from_pretrained(str(model / "vae")).state_dict()
    refine_exported_decoder(model, steps=3, batch=2, threads=1, log_dir=tmp_path / "log")
    after = AutoencoderKL.from_pretrained(str(model / "vae")).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("decoder.", "post_quant_conv.")) for k in changed)
    assert (tmp_path / "log" / "decoder_log.jsonl").read_text().count("\n") == 3
    assert json.loads((model / "actionworld.json").read_text())["decoder_refinements"][0]["steps"] == 3


def test_init_from_a_pipeline_folder_starts_from_its_weights(tmp_path):
    """--init-vae / --init-unet: a run fine-tunes another run's exported pipeline (same sizes)."""
    from actionbench.world.train import train

    src = train(_tiny_cfg(tmp_path / "src", 2, n_data=16), export_dir=tmp_path / "src-model")
    vae0 = load_file(str(src / "vae" / "diffusion_pytorch_model.safetensors"))
    unet0 = load_file(str(src / "unet" / "diffusion_pytorch_model.safetensors"))
    # no autoencoder steps and one UNet step at learning rate 0: every saved weight is the init's
    cfg = _tiny_cfg(tmp_path / "ft", 1, n_data=16, vae_steps=0, decoder_steps=0, init_vae=str(src), init_unet=str(src), lr=0.0)
    train(cfg, export_dir=None)
    vae1 = load_file(str(tmp_path / "ft" / "vae.safetensors"))
    ckpt = load_file(str(tmp_path / "ft" / "unet.ckpt.safetensors"))
    assert vae0.keys() == vae1.keys() and all(torch.equal(vae0[k].float(), vae1[k]) for k in vae0)
    assert all(torch.equal(unet0[k].float(), ckpt["model.unet." + k]) for k in unet0)


def test_a_packed_checkpoint_resumes_the_same_run(tmp_path):
    from actionbench.world.checkpoint import PACKED, pack, pack_tensors, unpack, unpack_tensors
    from actionbench.world.train import train

    # the format: half precision, row-sparse moments restored exactly where they are zero
    m = torch.zeros(10, 3)
    m[[2, 7]] = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.25, -4.0]])
    state = {"model.w": torch.randn(10, 3), "opt.0.exp_avg": m, "opt.0.exp_avg_sq": torch.rand(4, 3)}
    packed = pack_tensors(state)
    assert packed["model.w"].dtype == torch.float16 and packed["opt.0.exp_avg"].shape == (2, 3)
    assert packed["opt.0.exp_avg_sq"].dtype == torch.bfloat16 and "opt.0.exp_avg_sq.rows" not in packed  # dense
    back = unpack_tensors(packed)
    assert back["opt.0.exp_avg"].shape == (10, 3) and torch.equal(back["opt.0.exp_avg"], m)
    torch.testing.assert_close(back["model.w"], state["model.w"], rtol=1e-3, atol=1e-3)

    # a run cut at step 2, packed, unpacked elsewhere and resumed ends where the uncut run ends
    def cfg(out, steps):
        return _tiny_cfg(out, steps, n_data=16, ckpt_every=2)

    train(cfg(tmp_path / "a", 4), export_dir=None)
    train(cfg(tmp_path / "b", 4), export_dir=None, stop_at=2)
    pack(tmp_path / "b", tmp_path / "packed")
    assert (tmp_path / "packed" / PACKED).stat().st_size < 0.6 * (tmp_path / "b" / "unet.ckpt.safetensors").stat().st_size
    unpack(tmp_path / "packed", tmp_path / "c")
    assert not (tmp_path / "c" / "latents.safetensors").exists()  # remade from the seed on resume
    train(cfg(tmp_path / "c", 4), resume=True, export_dir=None)
    a = load_file(str(tmp_path / "a" / "unet.ckpt.safetensors"))
    c = load_file(str(tmp_path / "c" / "unet.ckpt.safetensors"))
    # the same run up to half-precision rounding (1e-4 absolute: fp16 keeps no digits of a
    # weight that never gets a gradient, such as the attention keys' bias, 1e-7)
    worst = max(((a[k] - c[k]).abs().max() / (a[k].abs().max() + 1e-4)).item() for k in a if k.startswith("model."))
    assert worst < 1e-2
    with pytest.raises(ActionBenchError, match="unpack into a new folder"):
        unpack(tmp_path / "packed", tmp_path / "c")
