"""ReVersion (Huang et al., 2023): a relation token with a steering loss and importance sampling.

ReVersion learns one token <R> for a relation. Besides the denoising loss it pulls the
token's embedding towards preposition words (positives) and away from the other words of
the exemplar's prompt (negatives: nouns, adjectives, ...) with a contrastive loss
("relation-steering contrastive learning", Sec. 3.2), and it samples timesteps skewed to
large t, where the layout (and so the relation) is decided ("relation-focal importance
sampling", Sec. 3.3). Model weights are frozen; the file holds the token's vector only.

Defaults: ADI's supplementary (ADI-SPEC.md, "Baselines"): batch 2, lr 2.5e-4, 3000 steps,
steering weight 0.01, temperature 0.07, 8 positives per step, denoising weight 1.0.
alpha = 0.5, the word lists, <R> and the initializer "and": ReVersion's code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from actionbench.errors import ActionBenchError

from .registry import register
from .token_method import TokenConfig, TokenMethod

# ReVersion's basis prepositions (the positives).
PREPOSITIONS = (
    "above", "across", "after", "against", "along", "among", "around", "at", "before", "behind", "below",
    "beneath", "beside", "between", "beyond", "by", "down", "from", "in", "inside", "into", "near", "of",
    "off", "on", "onto", "opposite", "out", "outside", "over", "past", "through", "throughout", "to",
    "toward", "towards", "under", "underneath", "up", "upon", "via", "with", "within", "without",
)
# Words that are neither positives nor negatives (articles, auxiliaries, conjunctions, punctuation).
STOP_WORDS = ("a", "an", "the", "and", "or", "is", "are", "was", "his", "her", "their", "its", ",", ".", "!")


def importance_weights(num_steps: int, alpha: float) -> torch.Tensor:
    """ReVersion eq. 4: f(t) = (1 - alpha cos(pi t / T)) / T over t = 0..T-1, normalised to sum 1."""
    t = torch.arange(num_steps, dtype=torch.float64)
    f = (1.0 - alpha * torch.cos(math.pi * t / num_steps)) / num_steps
    return (f / f.sum()).float()


def sample_timesteps(weights: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n timesteps drawn with probabilities ``weights`` (with replacement)."""
    return torch.multinomial(weights, n, replacement=True, generator=generator)


def steering_loss(token: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, temperature: float) -> torch.Tensor:
    """ReVersion eq. 3 (InfoNCE): -log( sum_p exp(s(R,p)/tau) / sum_{p or n} exp(s(R,x)/tau) ).

    ``token`` (d,), ``positives`` (P, d), ``negatives`` (N, d); s is the cosine similarity.
    Only ``token`` should carry a gradient (the word embeddings are frozen).
    """
    words = F.normalize(torch.cat([positives, negatives]).float(), dim=-1)
    scores = words @ F.normalize(token.float(), dim=-1) / temperature
    return torch.logsumexp(scores, 0) - torch.logsumexp(scores[: len(positives)], 0)


def word_ids(tokenizer, words) -> list[int]:
    """The single-piece ids of ``words`` (words that split into several pieces are left out)."""
    out = []
    for w in words:
        ids = tokenizer(w, add_special_tokens=False).input_ids
        if len(ids) == 1:
            out.append(ids[0])
    return out


@dataclass
class ReVersionConfig(TokenConfig):
    steps: int = 3000  # ADI supplementary
    lr: float = 2.5e-4  # ADI supplementary
    batch_size: int = 2  # ADI supplementary
    token: str = "<R>"  # ReVersion's code
    initializer: str = "and"  # ReVersion's code
    layerwise: bool = False
    denoise_weight: float = 1.0  # ADI supplementary
    steer_weight: float = 0.01  # ADI supplementary
    temperature: float = 0.07  # ADI supplementary
    num_positives: int = 8  # ADI supplementary (prepositions sampled per step)
    importance_sampling: bool = True
    alpha: float = 0.5  # ReVersion's importance-sampling skew

    def __post_init__(self):
        super().__post_init__()
        if self.layerwise:
            raise ActionBenchError("reversion learns one relation token: layerwise must be false")
        if self.temperature <= 0:
            raise ActionBenchError(f"temperature must be > 0 (got {self.temperature})")
        if self.num_positives < 1:
            raise ActionBenchError(f"num_positives must be >= 1 (got {self.num_positives})")
        if not 0.0 <= self.alpha < 1.0:
            raise ActionBenchError(f"alpha must be in [0, 1) (got {self.alpha})")


@register
class ReVersion(TokenMethod):
    name = "reversion"
    summary = "relation token with steering loss and importance sampling (Huang et al. 2023)"
    Config = ReVersionConfig

    def setup(self, work_dir) -> None:
        super().setup(work_dir)
        cfg = self.config
        # Per text encoder (one on SD, two on SDXL): its frozen word embeddings, the ids of the
        # positives in its tokenizer, each exemplar's negatives. The steering loss is taken in
        # each encoder's own embedding space, on that encoder's slice of <R>, and averaged.
        tokenizers = [tok for tok, _ in self.text.pairs]
        token_ids = self.token_id if self.text.sdxl else (self.token_id,)
        prompt_ids = self.ids.cpu().unbind(1) if self.text.sdxl else (self.ids.cpu(),)
        words = [w for w in PREPOSITIONS if all(len(word_ids(tok, [w])) == 1 for tok in tokenizers)]
        self.tables = self.text.embedding_tables()
        self.positive_ids, self.negative_ids = [], []
        for tok, token_id, ids in zip(tokenizers, token_ids, prompt_ids):
            positives = torch.tensor(word_ids(tok, words))
            # Negatives per exemplar: its prompt's words that are not special, stop words, prepositions or <R>.
            excluded = set(word_ids(tok, STOP_WORDS)) | set(positives.tolist()) | set(tok.all_special_ids) | {token_id}
            self.positive_ids.append(positives)
            self.negative_ids.append([[i for i in row.tolist() if i not in excluded] for row in ids])
        self.t_weights = importance_weights(self.pipe.scheduler.config.num_train_timesteps, cfg.alpha)
        if cfg.num_positives > len(words):
            raise ActionBenchError(f"num_positives {cfg.num_positives} > {len(words)} known prepositions")

    def training_step(self, generator: torch.Generator) -> dict[str, float]:
        cfg = self.config
        b = cfg.batch_size
        idx = torch.randint(0, len(self.action_set), (b,), generator=generator)
        latents = self.latents[idx.to(self.device)]
        noise = torch.randn(latents.shape, generator=generator).to(self.device)
        if cfg.importance_sampling:
            t = sample_timesteps(self.t_weights, b, generator).to(self.device)
        else:
            t = torch.randint(0, len(self.t_weights), (b,), generator=generator).to(self.device)
        vectors = self.vectors.unsqueeze(0).expand(b, -1, -1)
        denoise = self.denoise_losses(latents, self.ids[idx.to(self.device)], vectors, noise, t).mean()
        chosen = torch.randperm(len(self.positive_ids[0]), generator=generator)[: cfg.num_positives]
        steer = torch.stack([
            torch.stack([
                steering_loss(v, table[pos[chosen].to(table.device)].detach(), table[torch.tensor(neg[i])].detach(), cfg.temperature)
                for v, table, pos, neg in zip(self.text.split(self.vectors[0]), self.tables, self.positive_ids, self.negative_ids)
            ]).mean()
            for i in idx.tolist()
        ]).mean()
        loss = cfg.denoise_weight * denoise + cfg.steer_weight * steer
        loss.backward()
        return {"loss": float(loss.detach()), "denoise": float(denoise.detach()), "steer": float(steer.detach())}
