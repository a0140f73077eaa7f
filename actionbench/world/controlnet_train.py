"""Train an OpenPose ControlNet for the ActionWorld model (``actionbench world train-controlnet``).

The renderer knows every joint, so every training image comes with its exact OpenPose
skeleton (:mod:`actionbench.world.skeleton`): the ControlNet learns on (skeleton, render,
caption) triples drawn from the same world sampler as the model's own data, with the
world model's UNet, text encoder and VAE frozen. The recipe is ``train.py``'s:

1. ``data``: ``n_data`` fresh renders (chunks of 256 seeded by (seed, chunk), any number of
   ``--workers``), their skeletons at the model's image size (uint8) and their latents
   (the frozen VAE's mean, times ``scaling_factor``) with their training captions
   (unnamed actions left out, as for the model): ``controlnet_data.safetensors`` +
   ``controlnet_captions.json``.
2. ``controlnet``: ``ControlNetModel.from_unet(unet, conditioning_channels=3)`` (a copy of
   the UNet's encoder and mid block, zero convolutions, and a conditioning embedding with
   ``cond_channels``, one level per VAE downsampling plus one: (16, 32, 64) for 64 px ->
   16x16 latents), epsilon loss of the frozen UNet fed the ControlNet's residuals, min-SNR
   weighting, captions dropped to "" ``drop_caption`` of the time (classifier-free
   guidance sees the skeleton with the empty prompt too), AdamW with warm-up then a
   constant rate, gradient clipping 1.0, an EMA of the weights (``ema: 0`` turns it off).
   Every step's batch, timesteps and noise come from a CPU generator seeded with (seed,
   step); ``controlnet.ckpt.safetensors`` (weights, EMA, AdamW moments, step in the
   metadata) is written atomically every ``ckpt_every`` steps and ``--resume`` continues
   from it; ``--time-budget`` ends the run with a checkpoint; ``log.jsonl`` has a line per step.
3. ``export``: the EMA weights in fp16 (``save_pretrained``) into ``actionbench/world/controlnet/``
   with ``actionworld_controlnet.json`` (step, config, base model and its fingerprint);
   ``--method controlnet --model world`` loads it.

The text encoder is frozen, so each distinct caption (432 + the empty one) is encoded once.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from ..models import WORLD_CONTROLNET_DIR, load_pipeline
from .skeleton import render_skeleton
from .train import (
    _as_uint8,
    _atomic_save,
    _load_ckpt,
    _log,
    _model_device,
    _save_ckpt,
    _uint8_to_tensor,
    optimizer_step,
    random_renders,
    start_run,
    tokenize,
)
from .worlds import renderer

CKPT = "controlnet.ckpt.safetensors"
DATA = "controlnet_data.safetensors"
CAPTIONS = "controlnet_captions.json"
INFO = "actionworld_controlnet.json"


@dataclass
class ControlNetTrainConfig:
    out: str = "scratch/world-controlnet"
    model: str | None = None  # the frozen base pipeline: a world model name or a diffusers folder; None: the world's model
    seed: int = 0
    steps: int = 3000
    batch: int = 32
    lr: float = 3e-4
    warmup: int = 100
    ema: float = 0.999  # 0: no EMA (the exported weights are the last ones)
    snr_gamma: float = 5.0
    drop_caption: float = 0.1
    ckpt_every: int = 200
    n_data: int = 16000
    cond_channels: list[int] | None = None  # conditioning embedding widths; None: (16, 32, 64, ...) per VAE level
    threads: int = 2
    world: str = "v2b"  # whose renders, skeletons and captions it trains on ("v3": beside --model world-v3)

    def __post_init__(self):
        from ..models import WORLD_MODEL_OF

        renderer(self.world)  # an unknown world: worlds.UnknownWorldError (a ValueError)
        if self.model is None:
            self.model = WORLD_MODEL_OF[self.world]


def cond_channels(pipe, cfg: ControlNetTrainConfig) -> tuple[int, ...]:
    """Conditioning-embedding widths: one stride-2 step per VAE downsampling (64 px -> 16x16: 3 levels)."""
    levels = int(round(math.log2(pipe.vae_scale_factor))) + 1
    if cfg.cond_channels is None:
        return tuple(16 * 2**i for i in range(levels))
    if len(cfg.cond_channels) != levels:
        raise ValueError(f"cond_channels needs {levels} widths for a VAE factor of {pipe.vae_scale_factor} (got {cfg.cond_channels})")
    return tuple(cfg.cond_channels)


def make_controlnet(pipe, cfg: ControlNetTrainConfig):
    """A ControlNet copied from the pipeline's UNet (encoder + mid block), zero convolutions, a small condition encoder."""
    from diffusers import ControlNetModel

    torch.manual_seed(cfg.seed)
    return ControlNetModel.from_unet(pipe.unet, conditioning_channels=3, conditioning_embedding_out_channels=cond_channels(pipe, cfg))


# --------------------------------------------------------------------------- data
def _pair_chunk(job: tuple[int, int, int, int, str]):
    """Renders and their skeletons of one chunk, seeded by (seed, chunk) alone."""
    seed, chunk, n, size, world = job
    images, items = random_renders(n, np.random.default_rng([seed, 7, chunk]), size, world=world)
    skeletons = [render_skeleton(s, a, c, sd, size, renderer(world)) for s, a, c, sd in items]
    return _as_uint8(images), _as_uint8(skeletons), items


@torch.no_grad()
def build_pairs(pipe, cfg: ControlNetTrainConfig, out: Path, workers: int = 1):
    """(latents, skeletons uint8 (N, H, W, 3), captions), made once and cached in ``out``."""
    data_path, cap_path = out / DATA, out / CAPTIONS
    if data_path.exists() and cap_path.exists():
        t = load_file(str(data_path))
        return t["latents"], t["skeletons"], json.loads(cap_path.read_text())["captions"]
    vae = pipe.vae.eval()
    device = _model_device(vae)
    size = int(pipe.unet.config.sample_size * pipe.vae_scale_factor)
    jobs = [(cfg.seed, c, min(256, cfg.n_data - i), size, cfg.world) for c, i in enumerate(range(0, cfg.n_data, 256))]
    caption = renderer(cfg.world).caption
    if workers > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers)
        chunks = pool.imap(_pair_chunk, jobs)
    else:
        pool, chunks = None, map(_pair_chunk, jobs)
    lats, skels, caps, labels = [], [], [], []
    try:
        for images, skeletons, items in chunks:
            x = _uint8_to_tensor(images).to(device, vae.dtype)
            lats.append(vae.encode(x).latent_dist.mean.float().cpu() * vae.config.scaling_factor)
            skels.append(torch.from_numpy(skeletons))
            caps += [caption(s, a, c) for s, a, c, _ in items]
            labels += [[s, a, c, sd] for s, a, c, sd in items]
    finally:
        if pool is not None:
            pool.close()
    latents, skeletons = torch.cat(lats), torch.cat(skels)
    _atomic_save({"latents": latents, "skeletons": skeletons}, data_path)
    cap_path.write_text(json.dumps({"scaling_factor": vae.config.scaling_factor, "captions": caps, "labels": labels}))
    return latents, skeletons, caps


# --------------------------------------------------------------------------- training
def train_loop(pipe, controlnet, latents, skeletons, captions, cfg: ControlNetTrainConfig, out: Path, resume: bool,
               stop_at: int | None = None, time_budget_s: float | None = None):
    """The ControlNet's diffusion loop (base model frozen); returns (EMA weights by name, steps completed)."""
    device = _model_device(pipe.unet)
    for module in (pipe.unet, pipe.text_encoder, pipe.vae):
        module.requires_grad_(False).eval()
    ckpt = out / CKPT
    named = [("controlnet." + k, p) for k, p in controlnet.named_parameters()]
    params = [p for _, p in named]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-2)
    ema = {k: p.detach().clone() for k, p in named}
    start = _load_ckpt(ckpt, named, opt, ema) if resume and ckpt.exists() else 0
    if start == 0:
        (out / "log.jsonl").unlink(missing_ok=True)
    sched = pipe.scheduler
    ac = sched.alphas_cumprod
    snr = (ac / (1 - ac)).to(device)
    # the text encoder is frozen: encode each distinct caption (and "") once
    unique = sorted(set(captions)) + [""]
    with torch.no_grad():
        hidden_all = torch.cat([pipe.text_encoder(tokenize(pipe.tokenizer, unique[i : i + 64]).to(device))[0]
                                for i in range(0, len(unique), 64)])
    where = {c: i for i, c in enumerate(unique)}
    caption_idx = torch.tensor([where[c] for c in captions])
    empty = len(unique) - 1
    latents, skeletons = latents.to(device), skeletons.to(device)
    ema_list = [ema[k] for k, _ in named]
    controlnet.train()
    t0 = time.time()
    done = start
    for step in range(start, cfg.steps):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(0, len(latents), (cfg.batch,), generator=g)
        x0 = latents[idx.to(device)]
        cond = skeletons[idx.to(device)].permute(0, 3, 1, 2).float().div(255.0)  # [0, 1], as the pipeline feeds it
        text = caption_idx[idx].clone()
        text[torch.rand(cfg.batch, generator=g) < cfg.drop_caption] = empty
        hidden = hidden_all[text.to(device)]
        t = torch.randint(0, sched.config.num_train_timesteps, (cfg.batch,), generator=g).to(device)
        noise = torch.randn(x0.shape, generator=g).to(device)
        xt = sched.add_noise(x0, noise, t)
        down, mid = controlnet(xt, t, hidden, controlnet_cond=cond, return_dict=False)
        pred = pipe.unet(xt, t, hidden, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
        w = torch.clamp(snr[t], max=cfg.snr_gamma) / snr[t]  # min-SNR-gamma weighting, epsilon target
        loss = (w * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
        optimizer_step(opt, loss, params, ema_list, lr, cfg.ema, step)
        _log(out / "log.jsonl", step=step, loss=round(loss.item(), 5), lr=lr, t=round(time.time() - t0, 2))
        done = step + 1
        out_of_time = time_budget_s is not None and time.time() - t0 >= time_budget_s
        if done % cfg.ckpt_every == 0 or done == cfg.steps or out_of_time:
            _save_ckpt(ckpt, done, named, opt, ema)
        if (stop_at is not None and done >= stop_at) or out_of_time:
            break
    controlnet.eval()
    return ema, done


def export_controlnet(controlnet, ema: dict | None, export_dir: str | Path = WORLD_CONTROLNET_DIR, step: int | None = None,
                      cfg: ControlNetTrainConfig | None = None, base_fingerprint: dict | None = None) -> Path:
    """The ControlNet (EMA weights if given) in fp16 with ``save_pretrained``, plus ``actionworld_controlnet.json``."""
    model = copy.deepcopy(controlnet).to("cpu")
    if ema:
        with torch.no_grad():
            for k, v in ema.items():
                model.get_parameter(k.split(".", 1)[1]).copy_(v)
    model.to(torch.float16).save_pretrained(str(export_dir), safe_serialization=True)
    info = {"step": step, "train_config": asdict(cfg) if cfg else None, "base_fingerprint": base_fingerprint,
            "conditioning": "OpenPose COCO-18 skeleton (actionbench.world.skeleton.render_skeleton), RGB in [0, 1]"}
    Path(export_dir, INFO).write_text(json.dumps(info, indent=1))
    return Path(export_dir)


def train_controlnet(cfg: ControlNetTrainConfig, resume: bool = False, export_dir: str | Path | None = WORLD_CONTROLNET_DIR,
                     stop_at: int | None = None, device: str = "cpu", time_budget_s: float | None = None, workers: int = 1,
                     pipe=None):
    """Make the data, train (or resume), export; returns the export folder (or None).

    ``pipe``: the base pipeline (default: ``load_pipeline(cfg.model)``). ``device``,
    ``time_budget_s`` and ``workers`` change where and how long, not what is trained.
    """
    from ..fingerprint import model_fingerprint

    cfg, out = start_run(cfg, resume, device, (CKPT, DATA, CAPTIONS, "log.jsonl"))
    if pipe is None:
        pipe = load_pipeline(cfg.model)
    pipe = pipe.to(device=device, dtype=torch.float32)
    latents, skeletons, captions = build_pairs(pipe, cfg, out, workers)
    controlnet = make_controlnet(pipe, cfg).to(device)
    ema, step = train_loop(pipe, controlnet, latents, skeletons, captions, cfg, out, resume, stop_at, time_budget_s)
    if export_dir:
        return export_controlnet(controlnet, {k: v.cpu() for k, v in ema.items()}, export_dir, step, cfg,
                                 model_fingerprint(pipe))
    return None
