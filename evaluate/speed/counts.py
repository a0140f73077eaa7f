"""FLOP and saved-activation counts of a step on the ``meta`` device (no memory, no time)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager

import torch

from evaluate.speed.models import PRECISIONS, build, text_encoder_modules


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


def context_length(pipe) -> int:
    """Tokens per prompt of ``pipe``'s text side (77 on SD and SDXL; 24 on ActionWorld v3's)."""
    tok = getattr(pipe, "tokenizer", None)
    return int(getattr(tok, "model_max_length", 77) or 77)


def _is_attention(op: str) -> bool:
    return "attention" in op or op in ("bmm", "baddbmm")


class _Held:
    """What autograd keeps for a saved tensor while counting: the tensor and its storage."""

    __slots__ = ("tensor", "storage", "__weakref__")

    def __init__(self, tensor):
        self.tensor = tensor
        self.storage = tensor.untyped_storage()


def count_step(step: Callable[[], None], frozen=()) -> dict:
    """FLOPs of one step, and the peak bytes of tensors autograd holds for backwards (distinct storages).

    Saved tensors are tracked until autograd lets them go, so three passes one after the
    other count one pass's activations, as a GPU's allocator would see them. Tensors that
    share storage with ``frozen`` (the model's weights, which a linear layer's backward holds
    on to) are memory the weights already take: counted apart (``saved_weights_gb``), not as
    activations (``saved_gb``).
    """
    import weakref

    weights = {t.untyped_storage()._cdata for t in frozen}
    holders: Counter = Counter()  # storage (its C++ address, stable for views and across wrappers) -> saved tensors using it
    live, peak = {True: 0, False: 0}, {True: 0, False: 0}  # by "is a weight"

    def release(key, nbytes, weight):
        holders[key] -= 1
        if holders[key] == 0:
            del holders[key]
            live[weight] -= nbytes

    def pack(t):
        held = _Held(t)
        key, nbytes = held.storage._cdata, held.storage.nbytes()
        weight = key in weights
        if holders[key] == 0:
            live[weight] += nbytes
            peak[weight] = max(peak[weight], live[weight])
        holders[key] += 1
        weakref.finalize(held, release, key, nbytes, weight)
        return held

    with _fused_attention(), Count() as c, torch.autograd.graph.saved_tensors_hooks(pack, lambda h: h.tensor):
        step()
    attention = sum(v for k, v in c.by_op.items() if _is_attention(k))
    return {"gflop": c.total / 1e9, "gflop_without_attention": (c.total - attention) / 1e9, "saved_gb": peak[False] / 2**30,
            "saved_weights_gb": peak[True] / 2**30}


def frozen_weights(pipe) -> list:
    """The weights a training step reads (UNet and text encoders)."""
    return [p for m in (pipe.unet, *text_encoder_modules(pipe)) for p in m.parameters()]


def weights_gb(pipe) -> float:
    """The frozen weights a step needs on the device: UNet and text encoder(s) (the VAE is not:
    exemplar latents are cached)."""
    return sum(p.numel() * p.element_size() for p in frozen_weights(pipe)) / 2**30


def optimizer_gb(trainable) -> float:
    """The trained tensors' memory: each fp32 tensor, its gradient and AdamW's two moments."""
    return sum(4 * t.numel() * t.element_size() for t in trainable) / 2**30


def floor_counts(arch: dict, precision: str = "bf16") -> dict:
    """The reference counts on the meta device: UNet forward at batch 1 (SDXL: with its pooled
    embedding and time ids), text encoder(s) over the L layer-wise prompt variants (L counted
    from the model: 16 on SD 1.x/2.x, 70 on SDXL base)."""
    from methods.diffusion import native_resolution, predict
    from methods.layerwise import cross_attention_layers

    pipe = build(arch, "meta", PRECISIONS[precision])
    unet, encoders = pipe.unet, text_encoder_modules(pipe)
    layers = len(cross_attention_layers(unet))
    n_tok = context_length(pipe)
    c, s, d = unet.config.in_channels, unet.config.sample_size, unet.config.cross_attention_dim
    pooled = torch.zeros(1, encoders[-1].config.projection_dim, device="meta", dtype=unet.dtype) if len(encoders) > 1 else None
    with _fused_attention(), Count() as cu, torch.no_grad():
        predict(unet, torch.zeros(1, c, s, s, device="meta", dtype=unet.dtype), torch.tensor([500], device="meta"),
                torch.zeros(1, n_tok, d, device="meta", dtype=unet.dtype), pooled, native_resolution(pipe))
    with _fused_attention(), Count() as ct, torch.no_grad():
        for te in encoders:
            te(torch.zeros(layers, n_tok, dtype=torch.long, device="meta"), output_hidden_states=len(encoders) > 1)
    attn = sum(v for k, v in cu.by_op.items() if _is_attention(k))
    params = [sum(p.numel() for p in te.parameters()) / 1e6 for te in encoders]
    out = {
        "cross_attention_layers": layers,
        "unet_forward_b1_gflop": cu.total / 1e9,
        "unet_forward_b1_gflop_without_attention": (cu.total - attn) / 1e9,
        "text_encoder_layer_variants_gflop": ct.total / 1e9,
        "unet_params_m": sum(p.numel() for p in unet.parameters()) / 1e6,
        "text_encoder_params_m": sum(params),
        "text_encoders_params_m": params,
    }
    if layers == 16:  # the name earlier results (and the issue) use
        out["text_encoder_16_variants_gflop"] = out["text_encoder_layer_variants_gflop"]
    return out
