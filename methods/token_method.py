"""What every token-learning method shares (Textual Inversion, P+, ReVersion, ADI).

The learned tensor is V, shape (L, d): one vector per cross-attention layer when
``layerwise`` (L = 16 on SD 2.1, counted from the UNet: 70 on SDXL), else a single vector
(L = 1). On SDXL d = w1 + w2, the two text encoders' widths side by side (see
:class:`methods.tokens.TextEncoders`). Model weights are frozen. For a batch of B prompts
and per-sample copies V_b (B, L, d), the B*L prompt variants are encoded by the text
encoder(s) as ONE batch; layer-wise encodings reach their layers through
:mod:`methods.layerwise`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .base import Method, PromptEncoder
from .config import MethodConfig
from .diffusion import noisy_and_target, per_sample_mse
from .layerwise import cross_attention_layers, install_layerwise, repeat_for_layers
from .learned import LearnedAction
from .tokens import TextEncoders, encode


@dataclass
class TokenConfig(MethodConfig):
    token: str = "<A>"
    initializer: str = "person"  # (ours) the word whose embedding every v_l starts from
    layerwise: bool = False


def encode_with_identifiers(text_encoder, ids: torch.Tensor, token_id: int, vectors: torch.Tensor) -> torch.Tensor:
    """Encode B prompts with per-sample identifier sets ``vectors`` (B, L, d) -> (B, L*77, d).

    Row b*L + l of the one text-encoder batch is prompt b with v_l at the placeholder.
    With L = 1 the result is the ordinary (B, 77, d).
    """
    b, layers, d = vectors.shape
    states = encode(text_encoder, ids.repeat_interleave(layers, 0), token_id, vectors.reshape(b * layers, d))
    return states.reshape(b, layers * states.shape[1], states.shape[2])


def encode_identifiers(text: TextEncoders, ids: torch.Tensor, token_id, vectors: torch.Tensor):
    """:func:`encode_with_identifiers` for any model -> (states (B, L*77, d), pooled (B, p) or None).

    SDXL's UNet also reads one pooled text embedding per sample, added to its timestep
    embedding (no cross-attention layer reads it, so it cannot be routed per layer). (ours)
    With L identifiers it is the mean of the L prompt variants' pooled embeddings, so every
    v_l reaches it as the prompt's one identifier would (L = 1: the prompt's own).
    """
    if not text.sdxl:
        return encode_with_identifiers(text.pairs[0][1], ids, token_id, vectors), None
    b, layers, d = vectors.shape
    states, pooled = text.encode(ids.repeat_interleave(layers, 0), token_id, vectors.reshape(b * layers, d))
    return states.reshape(b, layers * states.shape[1], states.shape[2]), pooled.view(b, layers, -1).mean(1)


def batched_vjp(output, inputs: torch.Tensor, cotangents, batched: bool = True) -> torch.Tensor:
    """K vector-Jacobian products through one graph: (K, *output.shape) -> (K, *inputs.shape).

    Row k is d<cotangents[k], output>/d inputs. ``batched`` runs the K products as ONE
    vmapped backward (``is_grads_batched``), sharing the forward's saved activations;
    otherwise (or where an op has no batching rule) K backward passes over the kept graph.
    Both give the same numbers; the forward runs once either way. ``output`` may be a tuple
    of tensors (SDXL: states and pooled embedding) with a tuple of cotangents to match.
    """
    if isinstance(output, (tuple, list)):
        output, cotangents = tuple(output), tuple(c.to(o.dtype) for o, c in zip(output, cotangents))
    else:
        cotangents = cotangents.to(output.dtype)
    if batched:
        try:
            # retain_graph: should an op lack a vmap rule mid-way, the loop below still has the graph.
            return torch.autograd.grad(output, inputs, cotangents, retain_graph=True, is_grads_batched=True)[0]
        except torch.OutOfMemoryError:
            raise
        except RuntimeError:  # an op without a vmap rule: fall back to one backward per row
            pass
    rows = list(zip(*cotangents)) if isinstance(output, tuple) else list(cotangents)
    last = len(rows) - 1
    return torch.stack([torch.autograd.grad(output, inputs, c, retain_graph=k < last)[0] for k, c in enumerate(rows)])


class TokenPromptEncoder(PromptEncoder):
    """Encodes prompts with a learned token; prompts without it are encoded as plain text."""

    def __init__(self, pipe, token_id, vectors: torch.Tensor):
        super().__init__(pipe)
        self.token_id = token_id
        self.vectors = vectors.to(self.text.device, pipe.text_encoder.dtype)

    @torch.no_grad()
    def encode(self, prompts: list[str]):
        ids = self.text.tokenize(prompts, self.text.device)
        layers = self.vectors.shape[0]
        first_ids, first_token = (ids[:, 0], self.token_id[0]) if self.text.sdxl else (ids, self.token_id)
        has = (first_ids == first_token).any(1)
        states, pooled = [], []
        for i in range(len(prompts)):  # few prompts at generation time; keep it simple
            if has[i]:
                s, p = encode_identifiers(self.text, ids[i : i + 1], self.token_id, self.vectors[None])
            else:
                s, p = self.text.encode(ids[i : i + 1])
                s = repeat_for_layers(s, layers)
            states.append(s)
            pooled.append(p)
        return torch.cat(states), (torch.cat(pooled) if pooled[0] is not None else None)


class TokenMethod(Method):
    """Learns V (L, d) for a placeholder token; subclasses define the training step."""

    Config = TokenConfig

    def setup(self, work_dir: Path) -> None:
        cfg = self.config
        self.freeze_model()
        self.token_id = self.text.add_placeholder(cfg.token)
        self.layers = install_layerwise(self.pipe.unet, self.pipe.tokenizer.model_max_length) if cfg.layerwise else []
        v0 = self.text.initial_vector(cfg.initializer)
        self.vectors = v0.repeat(max(1, len(self.layers)), 1).to(self.device).requires_grad_(True)
        self.latents = self.exemplar_latents()
        self.ids = self.text.tokenize([e.prompt(cfg.token) for e in self.action_set.exemplars], self.device)

    def parameters(self) -> list[torch.Tensor]:
        return [self.vectors]

    def fill(self) -> str:
        return self.config.token

    def learned_tensors(self) -> dict[str, torch.Tensor]:
        # The layout diffusers' textual-inversion loaders read: {token: tensor} on SD 1.x/2.x,
        # {"clip_l": ..., "clip_g": ...} on SDXL (the token is in the metadata).
        return self.text.named(self.vectors.detach().float().cpu(), self.config.token)

    def extra_metadata(self) -> dict:
        return {"token": self.config.token, "layerwise": bool(self.layers), "layers": self.layers}

    # -- pieces of a training step ------------------------------------------------
    def encode(self, ids: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """The text encodings y (B, L*77, d) of prompts ``ids`` with identifiers ``vectors`` (B, L, d)."""
        return self.encode_text(ids, vectors)[0]

    def encode_text(self, ids: torch.Tensor, vectors: torch.Tensor):
        """(y, pooled): the encodings and, on SDXL, the pooled embedding (else None)."""
        return encode_identifiers(self.text, ids, self.token_id, vectors)

    def sample_noise(self, generator: torch.Generator, shape, batch: int):
        """Gaussian noise of ``shape`` and ``batch`` uniform timesteps, drawn on the CPU generator."""
        noise = torch.randn(shape, generator=generator).to(self.device)
        steps = self.pipe.scheduler.config.num_train_timesteps
        t = torch.randint(0, steps, (batch,), generator=generator).to(self.device)
        return noise, t

    def denoise_losses(self, latents, ids, vectors, noise, t) -> torch.Tensor:
        """Per-sample ||target - eps_theta(z_t, t, y(V))||^2 for a batch, (B,)."""
        states, pooled = self.encode_text(ids, vectors)
        return self.denoise_losses_from_states(latents, states, noise, t, pooled)

    def denoise_losses_from_states(self, latents, states, noise, t, pooled=None) -> torch.Tensor:
        """The same loss given the text encodings y (B, L*77, d) (and SDXL's pooled embedding) instead of ids and V."""
        noisy, target = noisy_and_target(self.pipe.scheduler, latents, noise, t)
        return per_sample_mse(self.predict(noisy, t, states, pooled), target)

    def per_sample_copies(self, n: int) -> torch.Tensor:
        """n independent leaf copies of V (n, L, d), so each sample gets its own gradient."""
        return self.vectors.detach().unsqueeze(0).repeat(n, 1, 1).requires_grad_(True)

    # -- generation ---------------------------------------------------------------
    @classmethod
    def apply(cls, pipe, learned: LearnedAction) -> PromptEncoder:
        text = TextEncoders(pipe)
        token = learned.extra["token"]
        vectors = text.from_named(learned.tensors, token)
        token_id = text.add_placeholder(token)
        if learned.extra.get("layerwise"):
            install_layerwise(pipe.unet, pipe.tokenizer.model_max_length)
        if vectors.shape[0] > 1 and len(cross_attention_layers(pipe.unet)) != vectors.shape[0]:
            raise ValueError("identifier count does not match the model's cross-attention layers")
        return TokenPromptEncoder(pipe, token_id, vectors)


class DenoisingTokenMethod(TokenMethod):
    """The plain objective on exemplars (Textual Inversion, P+): mean loss over a batch."""

    def training_step(self, generator: torch.Generator) -> dict[str, float]:
        n = len(self.action_set)
        idx = torch.randint(0, n, (self.config.batch_size,), generator=generator).to(self.device)
        latents = self.latents[idx]
        noise, t = self.sample_noise(generator, latents.shape, len(idx))
        vectors = self.vectors.unsqueeze(0).expand(len(idx), -1, -1)
        loss = self.denoise_losses(latents, self.ids[idx], vectors, noise, t).mean()
        loss.backward()
        return {"loss": loss.item()}
