"""The ``clip`` judge: subject (and action-text) agreement by CLIP zero-shot, via open_clip.

For each image, CLIP scores "a photo of {subject}" for every evaluation subject; the
subject is right when the image's own subject scores highest. The same is done with
"a photo of someone who {phrase}" over the actions' phrases (a coarse, text-only view of
the action: CLIP knows "sits" from "performs a handstand" but not one salute from another).

Weights load by name (``model: ViT-H-14``, ``pretrained: laion2b_s32b_b79k``, or a local
checkpoint file for ``pretrained``); offline, only weights already on disk work.

open_clip imports torchvision for its image transforms and one helper layer, but its
model code does not need it; where torchvision is not installed (this project installs
the CPU torch build without it) a stand-in module is registered for that import only,
and images are preprocessed here (resize, centre crop, normalise) with torch.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import torch

from actionbench.errors import ActionBenchError

from .base import Item, Judge, JudgeContext, Verdict, register_judge

SUBJECT_TEMPLATE = "a photo of {}."
ACTION_TEMPLATE = "a photo of someone who {}."


def _torchvision_stand_in() -> None:
    """Register a minimal ``torchvision`` so ``import open_clip`` works without it.

    Only names are provided; calling any of them raises. open_clip's models never call
    them (its transforms do, and this judge does its own preprocessing).
    """

    class _Names(type):  # class attributes (InterpolationMode.BICUBIC) are placeholder strings
        def __getattr__(cls, attr):
            return f"{cls.__name__}.{attr}"

    def missing(name):
        def fail(*args, **kwargs):
            raise ActionBenchError(f"{name}: torchvision is not installed (an open_clip transform was used)")

        return _Names(name, (), {"__init__": fail, "__call__": fail})

    for mod_name in ("torchvision", "torchvision.ops", "torchvision.ops.misc", "torchvision.transforms",
                     "torchvision.transforms.functional", "torchvision.transforms.v2"):
        mod = types.ModuleType(mod_name)
        mod.__getattr__ = lambda name, _m=mod_name: missing(f"{_m}.{name}")  # PEP 562
        mod.__path__ = []  # a package, so submodules import
        mod.__actionbench_stand_in__ = True
        sys.modules[mod_name] = mod


def import_open_clip():
    """``open_clip``, with the torchvision stand-in when the real one is missing."""
    if "open_clip" in sys.modules:
        return sys.modules["open_clip"]
    stand_in = False
    try:
        import torchvision  # noqa: F401
    except ImportError:
        import transformers  # noqa: F401  (decides "no torchvision" before the stand-in exists)

        _torchvision_stand_in()
        stand_in = True
    try:
        import open_clip
    except ImportError as err:
        raise ActionBenchError(f"the clip judge needs open_clip_torch: pip install --no-deps open_clip_torch ({err})") from None
    finally:
        if stand_in:  # open_clip keeps the names it imported; nobody else should see the stand-in
            for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
                if getattr(sys.modules[name], "__actionbench_stand_in__", False):
                    del sys.modules[name]
    return open_clip


def preprocess(images, size: int, mean, std) -> torch.Tensor:
    """PIL images -> (N, 3, size, size): shorter side to ``size`` (bicubic), centre crop, normalise."""
    from PIL import Image

    out = []
    for im in images:
        im = im.convert("RGB")
        w, h = im.size
        s = size / min(w, h)
        im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
        out.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1))
    x = torch.stack(out)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


class ClipScorer:
    """An open_clip model and tokenizer: ``probs(images, texts)`` -> (N images, M texts)."""

    def __init__(self, model, tokenizer, image_size: int, mean, std, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.image_size, self.mean, self.std, self.device = image_size, mean, std, device

    @classmethod
    def from_name(cls, model: str, pretrained: str | None, device: str = "cpu") -> ClipScorer:
        open_clip = import_open_clip()
        try:
            net = open_clip.create_model(model, pretrained=pretrained, device=device)
        except Exception as err:  # unknown name, weights not on disk and no internet, ...
            raise ActionBenchError(
                f"clip judge: could not load open_clip model {model!r} with weights {pretrained!r} ({type(err).__name__}: {err}); "
                "give a local checkpoint file as `pretrained`, or run where the weights can be downloaded"
            ) from None
        cfg = getattr(net.visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size", getattr(net.visual, "image_size", 224))
        size = size[0] if isinstance(size, (tuple, list)) else size
        mean = cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)
        std = cfg.get("std", open_clip.OPENAI_DATASET_STD)
        return cls(net, open_clip.get_tokenizer(model), int(size), mean, std, device)

    @torch.no_grad()
    def probs(self, images, texts: list[str]) -> torch.Tensor:
        x = preprocess(images, self.image_size, self.mean, self.std).to(self.device)
        img = self.model.encode_image(x)
        txt = self.model.encode_text(self.tokenizer(texts).to(self.device))
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        scale = self.model.logit_scale.exp() if hasattr(self.model, "logit_scale") else 100.0
        return (scale * img @ txt.T).softmax(dim=-1).cpu()


@register_judge
class ClipJudge(Judge):
    name = "clip"
    sees = ("whether the image as a whole looks most like its subject's name among the evaluation subjects "
            "(zero-shot), and, coarsely, which action phrase it matches best")
    blind_to = ("fine pose (which arm, how high), deformations that keep the overall look (a tiger with human "
                "arms may still read as a tiger), anything its weights were not trained on; needs weights on disk")

    def __init__(self, context: JudgeContext, model: str = "ViT-H-14", pretrained: str | None = "laion2b_s32b_b79k",
                 scorer: ClipScorer | None = None, **options):
        super().__init__(context, **options)
        self.scorer = scorer or ClipScorer.from_name(model, pretrained, context.device)
        self.subjects = list(context.subjects)
        self.actions = {name: s.phrase for name, s in context.action_sets.items() if getattr(s, "phrase", None)}

    def judge(self, images: list, items: list[Item]) -> list[Verdict]:
        subj_texts = [SUBJECT_TEMPLATE.format(s) for s in self.subjects]
        act_names = list(self.actions)
        act_texts = [ACTION_TEMPLATE.format(p) for p in self.actions.values()]
        ps = self.scorer.probs(images, subj_texts) if self.subjects else None
        pa = self.scorer.probs(images, act_texts) if act_names else None
        out = []
        for i, item in enumerate(items):
            subject_ok = predicted_subject = action_ok = predicted_action = score = None
            if ps is not None and item.subject in self.subjects:
                predicted_subject = self.subjects[int(ps[i].argmax())]
                subject_ok = predicted_subject == item.subject
                score = round(float(ps[i, self.subjects.index(item.subject)]), 4)
            if pa is not None and item.action in self.actions:
                predicted_action = act_names[int(pa[i].argmax())]
                action_ok = predicted_action == item.action
            out.append(Verdict(item.image_id, self.name, action_ok, subject_ok, predicted_action, predicted_subject, score))
        return out
