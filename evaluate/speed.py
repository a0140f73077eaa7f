"""``actionbench speed``: how long one training step takes, against its floor.

Builds a Stable Diffusion architecture from its config with random weights (nothing is
downloaded: ``sd21-base`` and ``sd15`` are the public configs kept in
``evaluate/configs/``; ``tiny`` is the tests' topology, ``mid`` a small one that fits a
2-core CPU; any JSON file of the same layout works) and times, per training step, with
peak memory:

- ``adi-naive``: the paper's ADI step as written: three separate passes (anchor,
  context-different, action-different), each encoding the L prompt variants one by one;
- ``adi-3pass``: ADI's reference (``ADI.triple_gradients_naive``): three passes, the L
  variants encoded as one batch;
- ``adi-copies``: one batched pass with a per-sample copy of V for each of the 3 samples
  (the text encoder runs over 3*L variants);
- ``adi``: the suite's step (``ADI.triple_gradients``): the L variants encoded once, one
  batch-3 UNet pass, one batched vector-Jacobian product back through the text encoder;
- ``ti``: a Textual Inversion step (batch 2, one token);
- ``floor``: a plain batch-3 UNet forward and input-gradient backward, nothing else.

Each in every requested precision (fp32, bf16, fp16: the frozen weights; identifiers and
optimizer state stay fp32; attention is SDPA throughout), with and without gradient
checkpointing. FLOPs are counted with ``torch.utils.flop_counter``'s formulas and
activation memory from the tensors autograd saves, both on the ``meta`` device (no
memory, no time), so full-size figures are available on any machine. ``--e2e`` adds
the time to learn one action end to end: the paper's recipe (10 x 2000-step DreamBooth,
generation, 3000 ADI steps) against the suite's default (10 x 200-step LoRA, generation,
3000 fused steps), estimated from measured step times. Results: a table on stdout and
JSON under ``results/``.
"""

from __future__ import annotations

import copy
import json
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

CONFIG_DIR = Path(__file__).parent / "configs"
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
VARIANTS = ("adi-naive", "adi-3pass", "adi-copies", "adi", "ti", "floor")
TEMPLATE = "a person {} in a park"

# The paper's recipe and the suite's default (ADI-SPEC.md, methods/adi/__init__.py).
PAPER = {"exemplars": 10, "finetune_steps": 2000, "adi_steps": 3000, "adi_variant": "adi-naive"}


def _spec_archs() -> dict:
    from actionbench.models import PipelineSpec

    return {
        "tiny": PipelineSpec(),  # the tests' topology: 32 px images, 16x16 latents
        # A mid-size model for a 2-core CPU: SD's layout at 1/5 width, 32x32 latents.
        "mid": PipelineSpec(
            image_size=256, vae_channels=(32, 32, 32, 32), unet_channels=(64, 128, 256, 256), head_dim=32,
            norm_groups=32, text_width=256, text_layers=4, text_heads=4, text_ffn=1024,
        ),
    }


def arch_names() -> list[str]:
    return list(_spec_archs()) + sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_arch(name: str) -> dict:
    """``tiny`` / ``mid`` (a PipelineSpec), a config name in evaluate/configs, or a JSON path."""
    from actionbench.errors import ActionBenchError

    specs = _spec_archs()
    if name in specs:
        return {"name": name, "spec": specs[name]}
    path = Path(name) if name.endswith(".json") else CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise ActionBenchError(f"unknown model {name!r}: one of {', '.join(arch_names())}, or a config .json file")
    cfg = json.loads(path.read_text())
    missing = {"unet", "text_encoder", "vae", "scheduler"} - set(cfg)
    if missing:
        raise ActionBenchError(f"{path}: config lacks {', '.join(sorted(missing))}")
    cfg.setdefault("name", path.stem)
    return cfg


def build(arch: dict, device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0):
    """A pipeline with ``arch``'s architecture and random weights, on ``device`` (may be ``meta``)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from actionbench.models import build_pipeline
    from actionbench.tokenizer import clip_tokenizer

    torch.manual_seed(seed)
    with torch.device(device):
        if "spec" in arch:
            pipe = build_pipeline(arch["spec"], seed=seed)
        else:
            strip = lambda d: {k: v for k, v in d.items() if not k.startswith("_")}  # noqa: E731
            sd2 = arch.get("flavor", "sd2") == "sd2"
            pipe = StableDiffusionPipeline(
                vae=AutoencoderKL.from_config(strip(arch["vae"])),
                text_encoder=CLIPTextModel(CLIPTextConfig(**arch["text_encoder"])),
                tokenizer=clip_tokenizer(pad_token="!" if sd2 else "<|endoftext|>"),
                unet=UNet2DConditionModel.from_config(strip(arch["unet"])),
                scheduler=DDIMScheduler.from_config(strip(arch["scheduler"])),
                safety_checker=None, feature_extractor=None, requires_safety_checker=False,
            )
            pipe.set_progress_bar_config(disable=True)
    pipe.model_name = f"random-{arch['name']}"
    for module in (pipe.unet, pipe.text_encoder, pipe.vae):
        module.to(device)
        if dtype != torch.float32:
            module.to(dtype)
    return pipe


def resolution(pipe) -> int:
    from methods.diffusion import native_resolution

    return native_resolution(pipe)


# -- methods on synthetic data -----------------------------------------------------------


def _action_set(n: int):
    from actionbench.bench import ActionSet, Exemplar

    exemplars = tuple(Exemplar(Path(f"{i:02d}.png"), TEMPLATE) for i in range(1, n + 1))
    return ActionSet(name="synthetic", root=Path("synthetic"), exemplars=exemplars, phrase="does a handstand")


def synthetic_method(pipe, name: str = "adi", exemplars: int = 10, different: int = 4, **config):
    """A method ready to step (``setup`` without images): random cached latents stand in for the VAE's."""
    import methods
    from methods.layerwise import install_layerwise
    from methods.tokens import add_placeholder, initial_vector, tokenize

    cls = methods.get_method(name)
    m = cls(pipe, _action_set(exemplars), cls.Config(action_different_steps=0, **config) if name == "adi" else cls.Config(**config))
    m.freeze_model()
    cfg = m.config
    m.token_id = add_placeholder(pipe.tokenizer, cfg.token)
    m.layers = install_layerwise(pipe.unet) if cfg.layerwise else []
    device = pipe.unet.device
    v0 = initial_vector(pipe.tokenizer, pipe.text_encoder, cfg.initializer) if device.type != "meta" else torch.zeros(pipe.text_encoder.config.hidden_size)
    m.vectors = v0.repeat(max(1, len(m.layers)), 1).to(device).requires_grad_(True)
    c, s = pipe.unet.config.in_channels, pipe.unet.config.sample_size
    gen = torch.Generator().manual_seed(0)
    m.latents = torch.randn(exemplars, c, s, s, generator=gen).to(device)
    m.ids = tokenize(pipe.tokenizer, [e.prompt(cfg.token) for e in m.action_set.exemplars], device)
    if name == "adi":
        m.triples = True
        m.different = [torch.randn(different, c, s, s, generator=gen).to(device) for _ in range(exemplars)]
    return m


def paper_naive_gradients(m, ids, latents, noise, t):
    """The paper's step as written: per role one pass, the L prompt variants encoded one by one."""
    from methods import token_method

    encode = token_method.encode  # looked up now: the meta-device count swaps it
    grads, losses = [], []
    for role in range(3):
        copy_ = m.per_sample_copies(latents.shape[0])
        states = torch.cat([encode(m.pipe.text_encoder, ids, m.token_id, copy_[:, l]) for l in range(copy_.shape[1])], 1)
        loss = m.denoise_losses_from_states(latents[:, role], states, noise[:, role], t[:, role])
        loss.sum().backward()
        grads.append(copy_.grad)
        losses.append(loss.detach())
    return torch.stack(grads, 1), torch.stack(losses, 1)


def copies_gradients(m, ids, latents, noise, t):
    """One batched pass with a per-sample copy of V for each of the 3B samples (3B*L encodings)."""
    b = latents.shape[0]
    copies = m.per_sample_copies(3 * b)
    losses = m.denoise_losses(latents.flatten(0, 1), ids.repeat_interleave(3, 0), copies, noise.flatten(0, 1), t.flatten(0, 1))
    losses.sum().backward()
    return copies.grad.view(b, 3, *copies.shape[1:]), losses.detach().view(b, 3)


GRADIENTS = {
    "adi-naive": paper_naive_gradients,
    "adi-3pass": lambda m, *a: m.triple_gradients_naive(*a),
    "adi-copies": copies_gradients,
    "adi": lambda m, *a: m.triple_gradients(*a),
}


def make_step(pipe, variant: str, exemplars: int = 10) -> Callable[[], None]:
    """One training step of ``variant`` (sampling, gradients, masks, AdamW) as a closure."""
    from methods.adi.functional import strategy_mask

    gen = torch.Generator().manual_seed(0)
    if variant in GRADIENTS:
        m = synthetic_method(pipe, "adi", exemplars)
        opt = torch.optim.AdamW([m.vectors], lr=m.config.lr)
        gradients = GRADIENTS[variant]

        def step():
            anchor, latents = m.sample_triples(gen)
            noise, t = m.triple_noise(gen, latents)
            g, _ = gradients(m, m.ids[anchor], latents, noise, t)
            masks = torch.stack([strategy_mask("adi", gi[0], gi[1], gi[2], m.config.beta, gen) for gi in g])
            m.vectors.grad = (g[:, 0] * masks).mean(0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step
    if variant == "ti":
        m = synthetic_method(pipe, "textual-inversion", exemplars)
        opt = torch.optim.AdamW([m.vectors], lr=m.config.lr)

        def step():
            idx = torch.randint(0, exemplars, (m.config.batch_size,), generator=gen)
            noise, t = m.sample_noise(gen, m.latents[idx].shape, len(idx))
            vectors = m.vectors.unsqueeze(0).expand(len(idx), -1, -1)
            m.denoise_losses(m.latents[idx], m.ids[idx], vectors, noise, t).mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step
    if variant == "floor":
        unet = pipe.unet
        unet.requires_grad_(False)
        d, c, s = pipe.text_encoder.config.hidden_size, unet.config.in_channels, unet.config.sample_size
        layers = 16
        dev, dt = unet.device, unet.dtype
        x = torch.randn(3, c, s, s, generator=gen).to(dev, dt)
        states = torch.randn(3, layers * 77, d, generator=gen).to(dev, dt).requires_grad_(True)
        t = torch.full((3,), 500, device=dev)

        def step():
            out = unet(x, t, states).sample
            torch.autograd.grad(out.float().square().mean(), states)

        return step
    raise ValueError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")


# -- measuring -------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(step: Callable[[], None], device: torch.device, warmup: int = 1, iters: int = 3) -> dict:
    """Median / min seconds per step, and (CUDA) the peak memory allocated during the steps."""
    for _ in range(warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    out = {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}
    if device.type == "cuda":
        out["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


class Count(torch.utils._python_dispatch.TorchDispatchMode):
    """FLOPs by ``torch.utils.flop_counter``'s formulas; works on the meta device and under autograd.grad."""

    def __init__(self):
        super().__init__()
        from torch.utils.flop_counter import flop_registry

        self.registry = flop_registry
        self.by_op: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func._overloadpacket
        if packet not in self.registry and func is not torch.ops.prim.device.default:
            with self:
                r = func.decompose(*args, **kwargs)
                if r is not NotImplemented:
                    return r
        out = func(*args, **kwargs)
        if packet in self.registry:
            self.by_op[packet.__name__] += self.registry[packet](*args, **kwargs, out_val=out)
        return out

    @property
    def total(self) -> int:
        return sum(self.by_op.values())


@contextmanager
def _unchecked_encode():
    """``methods.tokens.encode`` without its placeholder check, which reads values (none on meta)."""
    from methods import token_method
    from methods.tokens import spliced

    def encode(text_encoder, ids, placeholder_id=None, vectors=None):
        if vectors is None:
            return text_encoder(ids)[0]
        with spliced(text_encoder, placeholder_id, vectors):
            return text_encoder(ids)[0]

    original, token_method.encode = token_method.encode, encode
    try:
        yield
    finally:
        token_method.encode = original


@contextmanager
def _fused_attention():
    """SDPA as the memory-efficient kernel a GPU runs (the meta device would pick the math
    path, which keeps the attention matrix for the backward and inflates the count)."""
    import torch.nn.functional as F

    original = F.scaled_dot_product_attention

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            attn_mask = torch.zeros(attn_mask.shape, dtype=q.dtype, device=q.device)  # values do not matter on meta
        if attn_mask is not None:
            attn_mask = attn_mask.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
        return torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, attn_mask, grad, dropout_p, is_causal, scale=scale)[0]

    F.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


def _is_attention(op: str) -> bool:
    return "attention" in op or op in ("bmm", "baddbmm")


class _Held:
    """What autograd keeps for a saved tensor while counting: the tensor and its storage."""

    __slots__ = ("tensor", "storage", "__weakref__")

    def __init__(self, tensor):
        self.tensor = tensor
        self.storage = tensor.untyped_storage()


def count_step(step: Callable[[], None]) -> dict:
    """FLOPs of one step, and the peak bytes of tensors autograd holds for backwards (distinct storages).

    Saved tensors are tracked until autograd lets them go, so three passes one after the
    other count one pass's activations, as a GPU's allocator would see them.
    """
    import weakref

    holders: Counter = Counter()  # storage id -> how many saved tensors use it
    live, peak = [0], [0]

    def release(key, nbytes):
        holders[key] -= 1
        if holders[key] == 0:
            del holders[key]
            live[0] -= nbytes

    def pack(t):
        held = _Held(t)
        key, nbytes = id(held.storage), held.storage.nbytes()
        if holders[key] == 0:
            live[0] += nbytes
            peak[0] = max(peak[0], live[0])
        holders[key] += 1
        weakref.finalize(held, release, key, nbytes)
        return held

    with _unchecked_encode(), _fused_attention(), Count() as c, torch.autograd.graph.saved_tensors_hooks(pack, lambda h: h.tensor):
        step()
    attention = sum(v for k, v in c.by_op.items() if _is_attention(k))
    return {"gflop": c.total / 1e9, "gflop_without_attention": (c.total - attention) / 1e9, "saved_gb": peak[0] / 2**30}


def weights_gb(pipe) -> float:
    return sum(p.numel() * p.element_size() for m in (pipe.unet, pipe.text_encoder) for p in m.parameters()) / 2**30


def floor_counts(arch: dict, precision: str = "bf16") -> dict:
    """The issue's reference counts on the meta device: UNet forward at batch 1, text encoder over 16 variants."""
    pipe = build(arch, "meta", PRECISIONS[precision])
    unet, te = pipe.unet, pipe.text_encoder
    c, s, d = unet.config.in_channels, unet.config.sample_size, te.config.hidden_size
    with _fused_attention(), Count() as cu, torch.no_grad():
        unet(torch.zeros(1, c, s, s, device="meta", dtype=unet.dtype), torch.tensor([500], device="meta"), torch.zeros(1, 77, d, device="meta", dtype=unet.dtype))
    with _fused_attention(), Count() as ct, torch.no_grad():
        te(torch.zeros(16, 77, dtype=torch.long, device="meta"))
    attn = sum(v for k, v in cu.by_op.items() if _is_attention(k))
    return {
        "unet_forward_b1_gflop": cu.total / 1e9,
        "unet_forward_b1_gflop_without_attention": (cu.total - attn) / 1e9,
        "text_encoder_16_variants_gflop": ct.total / 1e9,
        "unet_params_m": sum(p.numel() for p in unet.parameters()) / 1e6,
        "text_encoder_params_m": sum(p.numel() for p in te.parameters()) / 1e6,
    }


@dataclass
class Setting:
    precision: str
    checkpointing: bool

    @property
    def label(self) -> str:
        return self.precision + ("+ckpt" if self.checkpointing else "")


def _prepare(arch, device, setting: Setting):
    pipe = build(arch, device, PRECISIONS[setting.precision])
    if setting.checkpointing:
        pipe.unet.enable_gradient_checkpointing()
    return pipe


def measure(arch: dict, device: str, settings: list[Setting], variants: list[str], iters: int, warmup: int,
            count: bool = True, log=print, on_rows=None) -> list[dict]:
    """Time (and count on the meta device) every variant in every setting -> rows."""
    rows = []
    dev = torch.device(device)
    for setting in settings:
        counts = {}
        if count:
            meta = _prepare(arch, "meta", setting)
            for v in variants:
                counts[v] = count_step(make_step(meta, v))
                counts[v]["weights_gb"] = weights_gb(meta)
            del meta
        if iters == 0:
            rows += [{"variant": v, "setting": setting.label, **counts.get(v, {})} for v in variants]
            continue
        pipe = _prepare(arch, device, setting)
        steps = {v: make_step(pipe, v) for v in variants}
        for v in variants:  # warm every variant before timing any: same caches for all
            for _ in range(warmup):
                steps[v]()
        for v in variants:
            r = time_step(steps[v], dev, warmup=0, iters=iters)
            rows.append({"variant": v, "setting": setting.label, **counts.get(v, {}), **r})
            log(f"  {setting.label:10s} {v:11s} {r['median_s'] * 1e3:10.1f} ms")
        del pipe, steps
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        if on_rows is not None:
            on_rows(rows)  # e.g. save what is measured so far
    return rows


# -- end to end ---------------------------------------------------------------------------


def _random_image(path: Path, size: int, seed: int) -> None:
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(size, size, 3, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(x).save(path)


def end_to_end(arch: dict, device: str, setting: Setting, adi_steps: dict, iters: int, gen_steps: int,
               lora_steps: int = 200, log=print) -> dict:
    """Time to learn one action: the paper's recipe against the suite's default, from step times.

    ``adi_steps``: measured seconds per step by variant (this setting). Measures here:
    one full DreamBooth step (all UNet weights, AdamW, fp32 master weights, autocast to the
    setting's precision), one LoRA step and its fixed cost (copy, adapter, merge), and the
    generation of one exemplar's action-different images (``gen_steps`` DDIM steps,
    scaled to the 50 both recipes use).
    """
    from actionbench.bench import Exemplar
    from methods.adi import DEFAULT_OTHER_PHRASES, ADIConfig
    from methods.adi.action_different import _fit_lora, _generate_with
    from methods.diffusion import noisy_and_target, per_sample_mse
    from methods.tokens import tokenize

    dev = torch.device(device)
    pipe = _prepare(arch, device, setting)
    pipe.unet.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    size = resolution(pipe)
    cfg = ADIConfig()
    phrases = [p for p in DEFAULT_OTHER_PHRASES][:4]
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "01.png"
        _random_image(image, size, 0)
        ex = Exemplar(image, TEMPLATE)

        def fit(steps):
            _sync(dev)
            t0 = time.perf_counter()
            unet = _fit_lora(pipe, ex, "does a handstand", size, steps, cfg.action_different_lr, cfg.action_different_rank, 0)
            _sync(dev)
            return time.perf_counter() - t0, unet

        fit(1)  # warm
        short, _ = fit(1)
        long_, unet = fit(1 + max(2, iters * 2))
        lora_step = (long_ - short) / max(2, iters * 2)
        lora_fixed = max(0.0, short - lora_step)
        log(f"  {setting.label:10s} lora step {lora_step * 1e3:.1f} ms, fixed {lora_fixed:.2f} s")
        _generate_with(pipe, unet, [ex.prompt(p) for p in phrases], size, 0, 1)  # warm
        _sync(dev)
        t0 = time.perf_counter()
        _generate_with(pipe, unet, [ex.prompt(p) for p in phrases], size, 0, gen_steps)
        _sync(dev)
        generate = (time.perf_counter() - t0) * 50 / gen_steps
        log(f"  {setting.label:10s} generation of {len(phrases)} images, 50 steps: {generate:.2f} s")
        del unet

    # DreamBooth: the whole UNet trained (paper: lr 1e-6, batch 1), fp32 master weights.
    unet = copy.deepcopy(pipe.unet).float().requires_grad_(True).train()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-6)
    gen = torch.Generator().manual_seed(0)
    c, s = unet.config.in_channels, unet.config.sample_size
    latents = torch.randn(1, c, s, s, generator=gen).to(dev)
    with torch.no_grad():
        states = pipe.text_encoder(tokenize(pipe.tokenizer, [TEMPLATE.format("does a handstand")], dev))[0].float()
    half = setting.precision != "fp32"

    def db_step():
        noise = torch.randn(latents.shape, generator=gen).to(dev)
        t = torch.randint(0, 1000, (1,), generator=gen).to(dev)
        noisy, target = noisy_and_target(pipe.scheduler, latents, noise, t)
        with torch.autocast(dev.type, dtype=PRECISIONS[setting.precision], enabled=half):
            loss = per_sample_mse(unet(noisy, t, states).sample, target).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    db = time_step(db_step, dev, warmup=1, iters=iters)
    log(f"  {setting.label:10s} dreambooth step {db['median_s'] * 1e3:.1f} ms")
    del unet, opt
    n = PAPER["exemplars"]
    paper_adi = adi_steps.get(PAPER["adi_variant"])
    suite_adi = adi_steps.get("adi")
    paper = {
        "action_different_s": n * (PAPER["finetune_steps"] * db["median_s"] + generate),
        "adi_s": PAPER["adi_steps"] * paper_adi if paper_adi else None,
    }
    suite = {
        "action_different_s": n * (lora_steps * lora_step + lora_fixed + generate),
        "adi_s": cfg.steps * suite_adi if suite_adi else None,
    }
    for r in (paper, suite):
        r["total_s"] = r["action_different_s"] + (r["adi_s"] or 0.0)
    return {
        "setting": setting.label, "estimated": True, "dreambooth_step_s": db["median_s"],
        "dreambooth_peak_mem_gb": db.get("peak_mem_gb"), "lora_step_s": lora_step, "lora_fixed_s": lora_fixed,
        "generation_per_exemplar_s": generate, "paper": paper, "suite": suite,
        "recipe": {"paper": f"{n} x DreamBooth {PAPER['finetune_steps']} steps + generation + {PAPER['adi_steps']} naive ADI steps",
                   "suite": f"{n} x LoRA {lora_steps} steps + generation + {cfg.steps} fused ADI steps"},
    }


# -- report ---------------------------------------------------------------------------------


def machine() -> dict:
    import os

    info = {"torch": torch.__version__, "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "cpu": platform.processor() or platform.machine()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _cell(x, width: int, fmt: str) -> str:
    return format(x, fmt).rjust(width) if x is not None else "-".rjust(width)


def format_table(result: dict) -> str:
    rows = result["rows"]
    lines = [f"actionbench speed: {result['model']} at {result['resolution']}px on {result['device']} ({result['machine'].get('gpu') or result['machine']['cpu']})"]
    f = result.get("floor_counts")
    if f:
        lines.append(
            f"reference counts: UNet forward b1 {f['unet_forward_b1_gflop']:.4g} GFLOP ({f['unet_forward_b1_gflop_without_attention']:.4g} without "
            f"SDPA), text encoder x16 variants {f['text_encoder_16_variants_gflop']:.4g} GFLOP"
        )
    head = f"{'setting':11s} {'step':11s} {'ms/step':>9s} {'x floor':>8s} {'x naive':>8s} {'GFLOP':>8s} {'TFLOP/s':>8s} {'act GB':>7s} {'peak GB':>8s}"
    lines += [head, "-" * len(head)]
    by = {(r["setting"], r["variant"]): r for r in rows}
    for r in rows:
        ms = r.get("median_s")
        floor = by.get((r["setting"], "floor"), {}).get("median_s")
        naive = by.get((r["setting"], "adi-naive"), {}).get("median_s")
        tflops = r["gflop"] / 1e3 / ms if ms and "gflop" in r else None
        peak = r.get("peak_mem_gb")
        est = (r["weights_gb"] + r["saved_gb"]) if "saved_gb" in r else None
        lines.append(" ".join([
            f"{r['setting']:11s} {r['variant']:11s}",
            _cell(ms and ms * 1e3, 9, ".1f"), _cell(ms and floor and ms / floor, 8, ".2f"),
            _cell(ms and naive and ms / naive, 8, ".2f"), _cell(r.get("gflop"), 8, ".4g"), _cell(tflops, 8, ".3g"),
            _cell(r.get("saved_gb"), 7, ".3g"), _cell(peak, 8, ".3g") if peak is not None else _cell(est, 7, ".3g") + "*",
        ]))
    lines.append("act GB: tensors saved for the backward (meta-device count); peak GB: CUDA peak, or * weights + act GB (estimate)")
    for e in result.get("end_to_end", []):
        if "error" in e:
            lines.append(f"end to end ({e['setting']}): failed ({e['error']})")
            continue
        p, s = e["paper"], e["suite"]
        lines.append(
            f"end to end ({e['setting']}, estimated from step times): paper {p['total_s'] / 60:.1f} min "
            f"(action-different {p['action_different_s'] / 60:.1f} + ADI {(p['adi_s'] or 0) / 60:.1f}), suite {s['total_s'] / 60:.1f} min "
            f"(action-different {s['action_different_s'] / 60:.1f} + ADI {(s['adi_s'] or 0) / 60:.1f}); {p['total_s'] / s['total_s']:.1f}x faster"
        )
    return "\n".join(lines)


def run_speed(model: str = "tiny", device: str = "cpu", precisions=("fp32",), checkpointing=(False,),
              variants=VARIANTS, iters: int = 3, warmup: int = 1, count: bool = True, e2e: bool = False,
              gen_steps: int = 50, log=print, partial_out: Path | None = None) -> dict:
    """The whole benchmark as a Python call; returns the result dict (see ``format_table``)."""
    arch = load_arch(model)
    settings = [Setting(p, c) for p in precisions for c in checkpointing]
    probe = build(arch, "meta")
    result = {
        "model": arch["name"], "device": device, "resolution": resolution(probe), "machine": machine(),
        "iters": iters, "warmup": warmup, "variants": list(variants),
        "floor_counts": floor_counts(arch) if count else None,
    }
    del probe
    def save_partial(rows):
        if partial_out is not None:
            partial_out.parent.mkdir(parents=True, exist_ok=True)
            partial_out.write_text(json.dumps({**result, "rows": rows, "partial": True}, indent=1))

    result["rows"] = measure(arch, device, settings, list(variants), iters, warmup, count, log, on_rows=save_partial)
    result["end_to_end"] = []
    if e2e and iters > 0:
        for setting in settings:
            if setting.checkpointing:
                continue
            adi = {r["variant"]: r["median_s"] for r in result["rows"] if r["setting"] == setting.label}
            try:  # the step table stands on its own; one failing estimate should not lose it
                result["end_to_end"].append(end_to_end(arch, device, setting, adi, iters, gen_steps, log=log))
            except (RuntimeError, ValueError) as err:
                log(f"  {setting.label:10s} end to end failed: {type(err).__name__}: {err}")
                result["end_to_end"].append({"setting": setting.label, "error": f"{type(err).__name__}: {err}"})
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return result


def merge_counts(result: dict, counted: dict) -> None:
    """Take FLOP / activation counts (and reference counts) from an earlier count-only run of the same model."""
    keys = ("gflop", "gflop_without_attention", "saved_gb", "weights_gb")
    by = {(r["setting"], r["variant"]): r for r in counted.get("rows", [])}
    for row in result["rows"]:
        # fp16 and bf16 count alike (2-byte weights and activations, the same operations)
        same = row["setting"].replace("fp16", "bf16")
        found = by.get((row["setting"], row["variant"])) or by.get((same, row["variant"]), {})
        row.update({k: found[k] for k in keys if k in found})
    if counted.get("model") == result["model"]:
        result["floor_counts"] = result.get("floor_counts") or counted.get("floor_counts")


def cmd_speed(args) -> None:
    from actionbench.errors import ActionBenchError

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    precisions = args.dtype.split(",")
    for p in precisions:
        if p not in PRECISIONS:
            raise ActionBenchError(f"--dtype {p}: one of {', '.join(PRECISIONS)}")
    variants = args.steps_to_time.split(",") if args.steps_to_time else list(VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ActionBenchError(f"--variants {','.join(unknown)}: one of {', '.join(VARIANTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = {"off": (False,), "on": (True,), "both": (False, True)}[args.checkpointing]
    counts_from = Path(args.counts) if args.counts else None
    if counts_from is not None and not counts_from.is_file():
        raise ActionBenchError(f"--counts {counts_from}: no such file (write one with --iters 0)")
    out = Path(args.out or f"results/speed-{load_arch(args.model)['name']}-{device}.json")
    result = run_speed(args.model, device, precisions, ckpt, variants, args.iters, args.warmup,
                       count=not (args.no_count or counts_from), e2e=args.e2e, gen_steps=args.gen_steps,
                       partial_out=out.with_suffix(".partial.json"))
    if counts_from is not None:
        merge_counts(result, json.loads(counts_from.read_text()))
    result["command"] = " ".join(["actionbench", *sys.argv[1:]]) if sys.argv[0].endswith(("actionbench", "__main__.py")) else None
    print(format_table(result))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    partial = out.with_suffix(".partial.json")
    if partial.exists():
        partial.unlink()
    print(f"wrote {out}")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "speed", help="time ADI / TI training steps against the floor",
        description="Time training steps (naive and fused ADI, Textual Inversion, the plain UNet floor) on a "
        "Stable Diffusion architecture built from its config with random weights; optionally the end-to-end "
        "time to learn one action. Prints a table and writes JSON.",
    )
    p.add_argument("--model", default="tiny", help=f"architecture: {', '.join(arch_names())}, or a config .json (default tiny)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--dtype", default="fp32", help="precision(s) of the frozen weights, comma-separated: fp32,bf16,fp16 (default fp32)")
    p.add_argument("--checkpointing", default="off", choices=["off", "on", "both"], help="UNet gradient checkpointing (default off)")
    p.add_argument("--variants", dest="steps_to_time", help=f"steps to time, comma-separated (default all: {','.join(VARIANTS)})")
    p.add_argument("--iters", type=int, default=3, help="timed steps per variant, median reported (0: count only; default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first (default 1)")
    p.add_argument("--no-count", action="store_true", help="skip the FLOP / activation counts on the meta device")
    p.add_argument("--counts", help="take the counts from this JSON of an earlier `--iters 0` run instead of counting")
    p.add_argument("--e2e", action="store_true", help="also the end-to-end time to learn one action, paper recipe vs suite")
    p.add_argument("--gen-steps", type=int, default=50, help="DDIM steps timed for generation in --e2e, scaled to 50 (default 50)")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--out", help="JSON file to write (default results/speed-MODEL-DEVICE.json)")
    p.set_defaults(func=cmd_speed)
