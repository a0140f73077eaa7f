"""The training-step variants ``actionbench speed`` times, as closures on synthetic data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from evaluate.speed.models import TEMPLATE

VARIANTS = ("adi-naive", "adi-3pass", "adi-copies", "adi", "ti", "floor", "floor-ti")


def _action_set(n: int):
    from actionbench.bench import ActionSet, Exemplar

    exemplars = tuple(Exemplar(Path(f"{i:02d}.png"), TEMPLATE) for i in range(1, n + 1))
    return ActionSet(name="synthetic", root=Path("synthetic"), exemplars=exemplars, phrase="does a handstand")


def synthetic_method(pipe, name: str = "adi", exemplars: int = 10, different: int = 4, **config):
    """A method ready to step (``setup`` without images): random cached latents stand in for the VAE's."""
    import methods
    from methods.layerwise import install_layerwise

    cls = methods.get_method(name)
    m = cls(pipe, _action_set(exemplars), cls.Config(action_different_steps=0, **config) if name == "adi" else cls.Config(**config))
    m.freeze_model()
    cfg = m.config
    m.token_id = m.text.add_placeholder(cfg.token)  # an id on SD, one per tokenizer on SDXL
    m.layers = install_layerwise(pipe.unet) if cfg.layerwise else []
    device = pipe.unet.device
    v0 = m.text.initial_vector(cfg.initializer) if device.type != "meta" else torch.zeros(m.text.width)
    m.vectors = v0.repeat(max(1, len(m.layers)), 1).to(device).requires_grad_(True)
    c, s = pipe.unet.config.in_channels, pipe.unet.config.sample_size
    gen = torch.Generator().manual_seed(0)
    m.latents = torch.randn(exemplars, c, s, s, generator=gen).to(device)
    m.ids = m.text.tokenize([e.prompt(cfg.token) for e in m.action_set.exemplars], device)
    if name == "adi":
        m.triples = True
        m.different = [torch.randn(different, c, s, s, generator=gen).to(device) for _ in range(exemplars)]
    return m


def paper_naive_gradients(m, ids, latents, noise, t):
    """The paper's step as written: per role one pass, the L prompt variants encoded one by one
    (on SDXL the pooled embedding is the variants' mean, as in ``encode_identifiers``)."""
    grads, losses = [], []
    for role in range(3):
        copy_ = m.per_sample_copies(latents.shape[0])
        encoded = [m.encode_text(ids, copy_[:, layer : layer + 1]) for layer in range(copy_.shape[1])]
        states = torch.cat([s for s, _ in encoded], 1)
        pooled = torch.stack([p for _, p in encoded]).mean(0) if encoded[0][1] is not None else None
        loss = m.denoise_losses_from_states(latents[:, role], states, noise[:, role], t[:, role], pooled)
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
    """One training step of ``variant`` (sampling, gradients, masks, AdamW) as a closure.

    The closure carries ``batch`` (samples per UNet pass) and ``trainable`` (the tensors
    AdamW updates: its fp32 state is the step's optimizer memory).
    """
    gen = torch.Generator().manual_seed(0)
    if variant in GRADIENTS:
        m = synthetic_method(pipe, "adi", exemplars)
        opt = torch.optim.AdamW([m.vectors], lr=m.config.lr)
        gradients = GRADIENTS[variant]

        def step():
            anchor, latents = m.sample_triples(gen)
            noise, t = m.triple_noise(gen, latents)
            g, _ = gradients(m, m.ids[anchor], latents, noise, t)
            masks = torch.stack([m.mask(gi[0], gi[1], gi[2], gen) for gi in g])  # per text encoder on SDXL
            m.vectors.grad = (g[:, 0] * masks).mean(0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        step.batch, step.trainable = 3 * m.config.batch_size, [m.vectors]
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

        step.batch, step.trainable = m.config.batch_size, [m.vectors]
        return step
    if variant in ("floor", "floor-ti"):
        return _floor_step(pipe, 3 if variant == "floor" else _ti_batch(), gen)
    raise ValueError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")


def _ti_batch() -> int:
    import methods

    return methods.get_method("textual-inversion").Config().batch_size


def _floor_step(pipe, batch: int, gen: torch.Generator) -> Callable[[], None]:
    """A plain UNet forward and input-gradient backward at ``batch`` (``floor``: ADI's 3;
    ``floor-ti``: Textual Inversion's 2), frozen weights, one encoding per cross-attention
    layer read through the layer-wise processors, as ADI's UNet pass reads them (L counted
    from the model); on SDXL with the pooled embedding and time ids ADI's pass gets."""
    from evaluate.speed.counts import context_length
    from methods.diffusion import native_resolution, predict
    from methods.layerwise import install_layerwise
    from methods.tokens import text_encoders

    unet = pipe.unet
    unet.requires_grad_(False)
    layers = len(install_layerwise(unet))
    d, c, s = unet.config.cross_attention_dim, unet.config.in_channels, unet.config.sample_size
    dev, dt = unet.device, unet.dtype
    x = torch.randn(batch, c, s, s, generator=gen).to(dev, dt)
    states = torch.randn(batch, layers * context_length(pipe), d, generator=gen).to(dev, dt).requires_grad_(True)
    inputs, pooled = [states], None
    pairs = text_encoders(pipe)
    if len(pairs) > 1:  # SDXL: the pooled embedding, also an input whose gradient ADI takes
        pooled = torch.randn(batch, pairs[-1][1].config.projection_dim, generator=gen).to(dev, dt).requires_grad_(True)
        inputs.append(pooled)
    t = torch.full((batch,), 500, device=dev)
    size = native_resolution(pipe)

    def step():
        out = predict(unet, x, t, states, pooled, size)
        torch.autograd.grad(out.float().square().mean(), inputs)

    step.batch, step.trainable = batch, []
    return step
