"""ADI: layer-wise identifiers learned with gradient masks (Huang et al., CVPR 2024).

The equations live in :mod:`methods.adi.functional`; action-different samples in
:mod:`methods.adi.action_different`; this module is the method: its config and its
training step, which reads in the order of the algorithm (ADI-SPEC.md):
sample triples -> noise -> one batched forward/backward with per-sample copies of V ->
the three gradients -> mask -> hand m * g(a,c) to the optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from actionbench.errors import ActionBenchError

from ..diffusion import encode_images
from ..registry import register
from ..token_method import TokenConfig, TokenMethod, batched_vjp
from .action_different import make_action_different, user_action_different
from .functional import NEEDS_TRIPLES, STRATEGIES, strategy_mask

DEFAULT_OTHER_PHRASES = ("stands", "walks", "waves", "squats", "sits")
MASKED_UPDATES = ("zero-gradient", "discarded")


@dataclass
class ADIConfig(TokenConfig):
    """Paper defaults (ADI-SPEC.md "Hyper-parameters"): beta 0.6, AdamW 2e-4, 3000 steps."""

    steps: int = 3000
    lr: float = 2e-4
    batch_size: int = 1  # triples per step (ours: the paper does not say)
    layerwise: bool = True  # False: the "no layer-wise expansion" ablation (one token)
    beta: float = 0.6
    mask: str = "adi"  # or an ablation: union, context-only, action-only, reversed, none, uniform, random, min, max; relative (ours)
    same_noise: bool = True  # (ours) one timestep and noise for the three samples of a triple
    fused: bool = True  # (ours) one batched pass for the three gradients; False: three passes
    # What becomes of a masked channel on a step (Eq. 10, "the update of masked channels is
    # discarded"). "zero-gradient": its gradient is zeroed and AdamW still moves it (momentum,
    # weight decay); "discarded" (ours, the literal reading): it does not move on that step,
    # its value and AdamW moments are left as they were.
    masked_update: str = "zero-gradient"
    # Action-different images when the user has none (ours: LoRA; paper: DreamBooth 1e-6 x 2000).
    action_different_steps: int = 200
    action_different_lr: float = 1e-4
    action_different_rank: int = 4
    action_different_phrases: list[str] = field(default_factory=lambda: list(DEFAULT_OTHER_PHRASES))
    action_different_sample_steps: int = 50

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 < self.beta < 1.0:
            raise ActionBenchError(f"beta must be strictly between 0 and 1 (got {self.beta}); the paper uses 0.6")
        if self.mask not in STRATEGIES:
            raise ActionBenchError(f"unknown mask {self.mask!r}; one of {', '.join(STRATEGIES)}")
        if self.masked_update not in MASKED_UPDATES:
            raise ActionBenchError(f"unknown masked_update {self.masked_update!r}; one of {', '.join(MASKED_UPDATES)}")
        if self.action_different_steps < 0:
            raise ActionBenchError(f"action_different_steps must be >= 0 (got {self.action_different_steps})")


@register
class ADI(TokenMethod):
    name = "adi"
    summary = "layer-wise identifiers with context/action gradient masks (Huang et al. 2024)"
    Config = ADIConfig

    def setup(self, work_dir: Path) -> None:
        super().setup(work_dir)
        self.triples = self.config.mask in NEEDS_TRIPLES
        if len(self.action_set) < 2 and self.triples:
            raise ActionBenchError(f"{self.action_set.root}: ADI needs at least 2 exemplars (got {len(self.action_set)})")
        self.different = self._action_different_latents(work_dir) if self.triples else None

    def _action_different_latents(self, work_dir: Path) -> list[torch.Tensor]:
        cfg = self.config
        paths = user_action_different(self.action_set)
        if paths is None:
            if cfg.action_different_steps == 0:
                raise ActionBenchError(
                    f"{self.action_set.root}: no action-different images; pass --action-different DIR "
                    f"(DIR/NN/*.png per exemplar NN) or let the suite make them (--action-different-steps N > 0)"
                )
            paths = make_action_different(
                self.pipe, self.action_set, work_dir, cfg.action_different_phrases, cfg.action_different_steps,
                cfg.action_different_lr, cfg.action_different_rank, self.resolution, cfg.seed,
                cfg.action_different_sample_steps,
            )
        from actionbench.bench import open_image

        return [
            encode_images(self.pipe.vae, [open_image(p) for p in paths[e.key]], self.resolution).to(self.device)
            for e in self.action_set.exemplars
        ]

    # -- one step -------------------------------------------------------------------
    def sample_triples(self, generator: torch.Generator):
        """B triples: (anchor x(a,c), context-different x(a,c'), action-different x(a',c)) latents."""
        n, b = len(self.action_set), self.config.batch_size
        anchor = torch.randint(0, n, (b,), generator=generator)
        context = (anchor + torch.randint(1, n, (b,), generator=generator)) % n  # another exemplar
        action = [
            self.different[i][int(torch.randint(0, len(self.different[i]), (1,), generator=generator))]
            for i in anchor.tolist()
        ]
        latents = torch.stack([self.latents[anchor], self.latents[context], torch.stack(action)], dim=1)
        return anchor.to(self.device), latents  # latents: (B, 3, C, h, w)

    # How the three identifier gradients go back through the text encoder: "batched" (one
    # vmapped vector-Jacobian product) or "loop" (three). Same numbers; a speed choice only.
    text_vjp: str = "batched"

    def triple_gradients(self, ids, latents, noise, t) -> tuple[torch.Tensor, torch.Tensor]:
        """g for every sample of B triples from ONE batched forward/backward -> (B, 3, L, d), loss (B, 3).

        All three samples of a triple use the anchor's prompt (``ids``) and the same V, so
        the L prompt variants are encoded ONCE per triple (B*L rows, not 3B*L). The UNet
        runs the 3B samples as one batch on detached copies of those encodings; its
        backward gives each sample's dL_i/dy_i, and one batched vector-Jacobian product
        through the text encoder turns the three rows of each triple into
        g_i = (dy/dV)^T dL_i/dy_i: each sample's own gradient, as if it had its own V.
        """
        b = latents.shape[0]
        vectors = self.per_sample_copies(b)
        # (B, L*77, d): the text encoder's one pass this step; on SDXL also the pooled embedding (B, p).
        text_out = [o for o in self.encode_text(ids, vectors) if o is not None]
        unet_in = [o.detach().to(self.pipe.unet.dtype).repeat_interleave(3, 0).requires_grad_(True) for o in text_out]
        pooled_in = unet_in[1] if len(unet_in) > 1 else None
        losses = self.denoise_losses_from_states(latents.flatten(0, 1), unet_in[0], noise.flatten(0, 1), t.flatten(0, 1), pooled_in)
        d_in = torch.autograd.grad(losses.sum(), unet_in)  # UNet input gradients only
        per_role = [d.view(b, 3, *o.shape[1:]).transpose(0, 1) for d, o in zip(d_in, text_out)]  # (3, B, ...)
        g = batched_vjp(tuple(text_out), vectors, tuple(per_role), batched=self.text_vjp == "batched")  # (3, B, L, d)
        return g.transpose(0, 1).float(), losses.detach().view(b, 3)

    def triple_gradients_naive(self, ids, latents, noise, t) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference: three separate forward/backward passes, one per role."""
        grads, losses = [], []
        for role in range(3):
            copy = self.per_sample_copies(latents.shape[0])
            loss = self.denoise_losses(latents[:, role], ids, copy, noise[:, role], t[:, role])
            loss.sum().backward()
            grads.append(copy.grad)
            losses.append(loss.detach())
        return torch.stack(grads, 1), torch.stack(losses, 1)

    def triple_noise(self, generator: torch.Generator, latents: torch.Tensor):
        """Noise (B, 3, C, h, w) and timesteps (B, 3); shared by a triple when ``same_noise``."""
        b = latents.shape[0]
        if self.config.same_noise:
            noise, t = self.sample_noise(generator, (b, 1, *latents.shape[2:]), b)
            return noise.expand_as(latents), t[:, None].expand(b, 3)
        noise, t = self.sample_noise(generator, latents.shape, 3 * b)
        return noise, t.view(b, 3)

    def mask(self, g_anchor, g_context, g_action, generator: torch.Generator) -> torch.Tensor:
        """The update mask (L, d) for one triple's gradients (L, d) each.

        Per layer, over each text encoder's channels separately: on SD the d channels, on
        SDXL the w1 channels of ``text_encoder`` and the w2 of ``text_encoder_2`` each get
        their own mask, dropping round(beta * w) of each (docs/models.md says why).
        """
        cfg = self.config
        parts = zip(*(self.text.split(g) for g in (g_anchor, g_context, g_action)))
        return torch.cat([strategy_mask(cfg.mask, a, c, x, cfg.beta, generator) for a, c, x in parts], -1)

    def training_step(self, generator: torch.Generator) -> dict[str, float]:
        cfg = self.config
        if not self.triples:  # masks that only look at g(a,c): no need for the other two samples
            return self._anchor_only_step(generator)
        anchor, latents = self.sample_triples(generator)
        noise, t = self.triple_noise(generator, latents)
        gradients = self.triple_gradients if cfg.fused else self.triple_gradients_naive
        g, losses = gradients(self.ids[anchor], latents, noise, t)
        masks = torch.stack([self.mask(gi[0], gi[1], gi[2], generator) for gi in g])
        self.vectors.grad = (g[:, 0] * masks).mean(0)
        self.step_mask = masks.any(0)  # a channel moves this step if any triple of the batch kept it
        return {"loss": float(losses[:, 0].mean()), "kept": float(masks.float().mean())}

    def _anchor_only_step(self, generator: torch.Generator) -> dict[str, float]:
        cfg = self.config
        n, b = len(self.action_set), cfg.batch_size
        anchor = torch.randint(0, n, (b,), generator=generator)
        latents = self.latents[anchor.to(self.device)]
        noise, t = self.sample_noise(generator, latents.shape, b)
        copies = self.per_sample_copies(b)
        losses = self.denoise_losses(latents, self.ids[anchor.to(self.device)], copies, noise, t)
        losses.sum().backward()
        masks = torch.stack([self.mask(g, g, g, generator) for g in copies.grad])
        self.vectors.grad = (copies.grad * masks).mean(0)
        self.step_mask = masks.any(0)
        return {"loss": float(losses.detach().mean()), "kept": float(masks.float().mean())}

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """AdamW's step; with ``masked_update: discarded``, every channel the step's mask dropped
        keeps its value and its AdamW moments (first and second) bit for bit. AdamW's step
        count is one per tensor, so bias correction still counts every step (a per-channel
        count would need another optimizer)."""
        if self.config.masked_update == "zero-gradient":
            optimizer.step()
            return
        p = self.vectors
        state = optimizer.state.get(p, {})
        keep = self.step_mask
        before = {k: (state[k].clone() if k in state else torch.zeros_like(p)) for k in ("exp_avg", "exp_avg_sq")}
        value = p.detach().clone()
        optimizer.step()
        with torch.no_grad():
            p.copy_(torch.where(keep, p, value))
            for k, old in before.items():
                optimizer.state[p][k].copy_(torch.where(keep, optimizer.state[p][k], old))
