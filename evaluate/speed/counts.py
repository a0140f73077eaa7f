"""FLOP and saved-activation counts of a step on the ``meta`` device (no memory, no time)."""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from typing import Callable

import torch

from evaluate.speed.models import PRECISIONS, build


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

