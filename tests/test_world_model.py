"""The shipped ActionWorld pipeline loads via --model world and draws; training is resumable and seeded."""

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from actionbench.errors import ActionBenchError
from actionbench.models import WORLD_MODEL_DIR, PipelineSpec, load_pipeline


def test_world_model_loads_and_generates():
    pipe = load_pipeline("world-v2b")
    n_cross = sum(1 for name, _ in pipe.unet.named_modules() if name.endswith("attn2"))
    assert n_cross == 16
    assert pipe.tokenizer.vocab_size == 49408 and type(pipe.scheduler).__name__ == "DDIMScheduler"
    g = torch.Generator().manual_seed(0)
    im = pipe("a panda squats in a park", num_inference_steps=4, guidance_scale=7.5, generator=g, height=64, width=64).images[0]
    assert im.size == (64, 64)
    size = sum(p.stat().st_size for p in WORLD_MODEL_DIR.rglob("*") if p.is_file())
    assert size < 30 * 2**20


def test_world_is_the_v3_model_and_draws():
    """``--model world`` is ActionWorld v3's: 1,024-wide text on the trimmed world tokenizer, 24 tokens."""
    from actionbench.models import WORLD_V3_MODEL_DIR, world_version

    pipe = load_pipeline("world")
    assert world_version("world") == "v3" and pipe.text_encoder.config.hidden_size == 1024
    assert len(pipe.tokenizer) == 876 and pipe.tokenizer.model_max_length == 24
    assert sum(1 for name, _ in pipe.unet.named_modules() if name.endswith("attn2")) == 16
    g = torch.Generator().manual_seed(0)
    im = pipe("a panda waves in a red striped shirt in a park", num_inference_steps=4, guidance_scale=7.5, generator=g,
              height=64, width=64).images[0]
    assert im.size == (64, 64)
    info = json.loads((WORLD_V3_MODEL_DIR / "actionworld.json").read_text())
    assert info["train_config"]["world"] == "v3" and info["step"] > 0


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
    from actionbench.models import build_pipeline
    from actionbench.world.train import _spec, build_dataset

    cfg = _tiny_cfg(tmp_path, 1)
    pipe = build_pipeline(_spec(cfg), seed=0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    lat1, caps1, labels1 = build_dataset(pipe, cfg, tmp_path / "a", workers=1)
    lat2, caps2, labels2 = build_dataset(pipe, cfg, tmp_path / "b", workers=2)
    assert len(caps1) == 300 and caps1 == caps2 and labels1 == labels2
    torch.testing.assert_close(lat1, lat2)


def test_dataset_of_the_v3_world(tmp_path):
    """``world: v3``: the data are v3 renders with v3 captions (no benchmark action named)."""
    from actionbench.models import build_pipeline
    from actionbench.world import render_v3 as V
    from actionbench.world.train import _spec, build_dataset, random_renders

    cfg = _tiny_cfg(tmp_path, 1, world="v3")
    pipe = build_pipeline(_spec(cfg), seed=0)
    _, caps, labels = build_dataset(pipe, cfg, tmp_path, workers=1)
    assert len(caps) == 300 and all("shirt" in c for c in caps)
    assert all(V.split_context(c) for _, _, c, _ in labels)
    benchmark_phrases = [V.action_phrase(a) for a in V.ACTIONBENCH.values()]
    assert not any(p in c for c in caps for p in benchmark_phrases)
    imgs, items = random_renders(2, np.random.default_rng(0), world="v3")
    assert imgs[0].tobytes() == V.render(*items[0]).tobytes()


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


def test_log_quantized_moments_keep_zeros_and_the_step_size():
    from actionbench.world.checkpoint import dequantize_log, quantize_log

    v = torch.cat([torch.zeros(5), torch.logspace(-20, -4, 1000)])
    q, r = quantize_log(v)
    assert q.dtype == torch.uint8 and (q[:5] == 0).all() and (q[5:] > 0).all()
    back = dequantize_log(q, r)
    assert (back[:5] == 0).all()
    step_error = (back[5:].sqrt() / v[5:].sqrt() - 1).abs().max()  # Adam's step goes as 1/sqrt(v)
    assert step_error < 0.09
    assert torch.equal(dequantize_log(*quantize_log(torch.zeros(3))), torch.zeros(3))


def test_a_packed_checkpoint_resumes_from_the_exported_model(tmp_path):
    from actionbench.world.checkpoint import CKPT_NAME, PACKED, pack, packed_step, unpack
    from actionbench.world.train import export, pipeline_from_checkpoint, train

    cfg = _tiny_cfg(tmp_path / "a", 4, n_data=16, ckpt_every=2)
    train(cfg, export_dir=None, stop_at=2)
    with pytest.raises(ActionBenchError, match="export it first"):
        pack(tmp_path / "a", tmp_path / "packed", WORLD_MODEL_DIR)  # the shipped model is another run's
    pipe, step, _ = pipeline_from_checkpoint(tmp_path / "a")
    export(pipe, None, tmp_path / "model", step=step, cfg=cfg)
    pack(tmp_path / "a", tmp_path / "packed", tmp_path / "model")
    full = (tmp_path / "a" / CKPT_NAME).stat().st_size
    assert (tmp_path / "packed" / PACKED).stat().st_size < full / 10 and packed_step(tmp_path / "packed") == 2

    unpack(tmp_path / "packed", tmp_path / "b")
    a, b = load_file(str(tmp_path / "a" / CKPT_NAME)), load_file(str(tmp_path / "b" / CKPT_NAME))
    assert a.keys() == b.keys()
    for k in a:
        if k.startswith("ema."):  # the weights are the exported EMA weights (fp16)
            torch.testing.assert_close(b[k], a[k], rtol=2e-3, atol=1e-4)
            torch.testing.assert_close(b["model." + k[4:]], b[k])
        elif k.endswith("exp_avg_sq"):
            assert ((b[k] > 0) == (a[k] > 0)).all()
            torch.testing.assert_close(b[k].sqrt(), a[k].sqrt(), rtol=0.09, atol=0.0)
        elif k.endswith("exp_avg"):
            assert not b[k].any()
    train(_tiny_cfg(tmp_path / "b", 4, n_data=16, ckpt_every=2), resume=True, export_dir=None)
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 3]  # it went on from step 2
    with pytest.raises(ActionBenchError, match="unpack into a new folder"):
        unpack(tmp_path / "packed", tmp_path / "b")
    with pytest.raises(ActionBenchError, match="sha256 differ"):
        unpack(tmp_path / "packed", tmp_path / "c", model_dir=WORLD_MODEL_DIR)


def test_v3_config_has_the_1024_wide_text_side_and_v2b_is_unchanged():
    from actionbench.world.train import TrainConfig, world_spec

    v3 = TrainConfig(world="v3").spec
    assert (v3["text_width"], v3["text_layers"], v3["text_vocab"], v3["text_max_length"]) == (1024, 1, "world", 24)
    assert TrainConfig().spec == asdict(world_spec("v2b")) and TrainConfig().spec["text_width"] == 64
    with pytest.raises(ActionBenchError, match="v4"):
        world_spec("v4")


def test_partial_init_copies_matching_tensors_and_leaves_the_new_text_side_fresh(tmp_path):
    """v2b -> v3: every UNet tensor but the cross-attention keys/values is copied; the text encoder starts fresh."""
    from dataclasses import replace

    from actionbench.models import build_pipeline
    from actionbench.world.train import _load_unet_and_text_encoder, _vae_weights

    small = PipelineSpec(image_size=64, vae_channels=(8, 8, 8), unet_channels=(8, 8, 16, 16), head_dim=8, norm_groups=4,
                         text_width=16, text_layers=1, text_heads=2, text_ffn=32)
    src = build_pipeline(small, seed=1)
    src.save_pretrained(str(tmp_path / "src"), safe_serialization=True)
    wide = build_pipeline(replace(small, text_width=32, text_vocab="world", text_max_length=24), seed=2)
    fresh_text = {k: v.clone() for k, v in wide.text_encoder.state_dict().items()}
    with pytest.raises(RuntimeError):
        _load_unet_and_text_encoder(wide, tmp_path / "src")  # sizes differ: all-or-nothing refuses
    report = _load_unet_and_text_encoder(wide, tmp_path / "src", partial=True)
    fresh = report["unet"]["fresh"]
    assert fresh and all(k.endswith(("attn2.to_k.weight", "attn2.to_v.weight")) for k in fresh)
    own, theirs = wide.unet.state_dict(), src.unet.state_dict()
    assert report["unet"]["copied"] == len(own) - len(fresh)
    for k in own:
        if k not in fresh:
            torch.testing.assert_close(own[k], theirs[k])
    assert report["text_encoder"]["copied"] == 0
    for k, v in wide.text_encoder.state_dict().items():
        torch.testing.assert_close(v, fresh_text[k])
    (tmp_path / "other" / "unet").mkdir(parents=True)
    (tmp_path / "other" / "text_encoder").mkdir()
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other" / "unet" / "diffusion_pytorch_model.safetensors"))
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other" / "text_encoder" / "model.safetensors"))
    with pytest.raises(ActionBenchError, match="no UNet tensor matches"):
        _load_unet_and_text_encoder(wide, tmp_path / "other", partial=True)
    save_file(src.vae.state_dict(), str(tmp_path / "vae.safetensors"))
    assert _vae_weights(tmp_path / "vae.safetensors").keys() == src.vae.state_dict().keys()
    with pytest.raises(FileNotFoundError, match="no such file"):
        _vae_weights(tmp_path / "missing.safetensors")


def test_training_from_a_partial_init_writes_init_json(tmp_path):
    from actionbench.models import build_pipeline
    from actionbench.world.train import train

    src = tmp_path / "src"
    build_pipeline(PipelineSpec(image_size=64, vae_channels=(8, 8, 8), unet_channels=(8, 8, 16, 16), head_dim=8,
                                norm_groups=4, text_width=8, text_layers=1, text_heads=2, text_ffn=32), seed=1
                   ).save_pretrained(str(src), safe_serialization=True)
    cfg = _tiny_cfg(tmp_path / "run", 1, n_data=16, init_unet=str(src), init_partial=True)
    train(cfg, export_dir=None)
    info = json.loads((tmp_path / "run" / "init.json").read_text())
    assert info["init_unet"] == str(src) and info["unet"]["copied"] > 0 and len(info["unet"]["fresh"]) == 32


def test_the_committed_v2b_pack_names_the_v2b_model_whatever_world_points_at():
    from safetensors import safe_open

    from actionbench.models import WORLD_MODELS
    from actionbench.world.checkpoint import LEGACY_NAMES, PACKED, file_hashes

    with safe_open("results/world-v2b/checkpoint/" + PACKED, "pt") as f:
        meta = f.metadata()
    folder = WORLD_MODELS[LEGACY_NAMES.get(meta["model_dir"], meta["model_dir"])]
    assert folder == WORLD_MODEL_DIR and file_hashes(folder) == json.loads(meta["weights_sha256"])


def test_a_v3_world_model_gets_the_v3_controlnet_or_says_how_to_train_it(monkeypatch, tmp_path):
    import actionbench.models as M
    from actionbench.models import build_pipeline, resolve_controlnet
    from actionbench.world.train import world_spec
    from methods.controlnet import default_controlnet

    pipe = build_pipeline(world_spec("v3"), seed=0)
    pipe.model_name = "world"
    assert default_controlnet(pipe) == "world-v3"
    pipe.model_name = "world-v2b"
    assert default_controlnet(pipe) == "world"  # v2b's, as the archived learned files name it
    monkeypatch.setitem(M.WORLD_CONTROLNETS, "world-v3", tmp_path / "none")
    with pytest.raises(ActionBenchError, match="train-controlnet --world v3"):
        resolve_controlnet("world-v3")


def test_v3_controlnet_data_are_v3_renders_with_their_exact_skeletons():
    from actionbench.world import render_v3 as V
    from actionbench.world.benchmark import write_benchmark  # noqa: F401  (the bench's poses use the same keypoints)
    from actionbench.world.controlnet_train import ControlNetTrainConfig, _pair_chunk
    from actionbench.world.skeleton import placement_keypoints, render_keypoints, render_skeleton

    cfg = ControlNetTrainConfig(world="v3")
    assert cfg.model == "world-v3" and ControlNetTrainConfig().model == "world-v2b"
    with pytest.raises(ValueError, match="v9"):
        ControlNetTrainConfig(world="v9")
    images, skeletons, items = _pair_chunk((0, 0, 3, 64, "v3"))
    s, a, c, sd = items[0]
    assert V.split_context(c) and images[0].tobytes() == np.asarray(V.render(s, a, c, sd)).tobytes()
    assert skeletons[0].tobytes() == np.asarray(render_skeleton(s, a, c, sd, 64, V)).tobytes()
    assert render_keypoints(s, a, c, sd, 64, V) == placement_keypoints(V.placement(s, a, c, sd, 64))
