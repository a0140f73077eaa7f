"""The ``vqa`` judge: ask a vision-language model two yes/no questions about each image.

Per image: "Does the panda perform a handstand? Answer yes or no." (the action's phrase,
the same one the clip judge uses) and "Is this a panda? Answer yes or no.". The answer is
read from the next-token logits after the chat template's assistant turn, not from a
generated text: P(yes) is the softmax over the tokens of "Yes"/"yes" and "No"/"no" only,
the "yes" tokens' probabilities summed. A verdict is ``P(yes) >= threshold``. One forward
pass per question, no decoding, so the cost is that of reading the prompt.

Any ``transformers`` image-text-to-text model with a chat template works
(``AutoProcessor`` + ``AutoModelForImageTextToText``): Qwen2-VL / Qwen2.5-VL first
(``Qwen/Qwen2-VL-2B-Instruct`` is the default), LLaVA and others through the same path.
The model is a hub id or a local folder (``--judge-model DIR``, or
``judge_options: {vqa: {model: DIR}}`` in a run config).

An image the model cannot answer about (an exception while reading or scoring it, a
tokenizer with no single-token "yes"/"no") gets ``None`` ("cannot tell") with the reason
in the note, never ``False``.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import torch

from actionbench.catalog import action_phrase
from actionbench.errors import ActionBenchError

from .base import Item, Judge, JudgeContext, Verdict, register_judge

DEFAULT_MODEL = "Qwen/Qwen2-VL-2B-Instruct"
YES_WORDS = ("Yes", "yes")
NO_WORDS = ("No", "no")
ANSWER_HINT = " Answer yes or no."
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")  # "Qwen/Qwen2-VL-2B-Instruct", or a legacy "gpt2"


# -- the questions ----------------------------------------------------------------------


def subject_forms(subject: str) -> tuple[str, str]:
    """``"A panda"`` -> ``("the panda", "a panda")``; a name stays itself (``"Barack Obama"``).

    The subjects are prompt prefixes with a capital article; a question needs the
    definite form for the action ("Does the panda ...") and the indefinite one for the
    subject ("Is this a panda?").
    """
    words = subject.split()
    if len(words) > 1 and words[0].lower() in ("a", "an", "the"):
        rest = " ".join(words[1:])
        article = words[0].lower()
        return f"the {rest}", (f"{article} {rest}" if article != "the" else f"the {rest}")
    return subject, subject


def base_form(verb: str) -> str | None:
    """A third-person verb's base form (``"performs"`` -> ``"perform"``), or None if it is not one.

    The actions' phrases are written for "{subject} {phrase}" ("salutes", "has hands
    together in prayer"); a yes/no question needs "Does the panda salute?".
    """
    irregular = {"has": "have", "does": "do", "goes": "go"}
    if verb in irregular:
        return irregular[verb]
    if len(verb) > 4 and verb.endswith("ies"):
        return verb[:-3] + "y"
    if verb.endswith(("ches", "shes", "sses", "xes", "zzes")):
        return verb[:-2]
    if len(verb) > 2 and verb.endswith("s") and not verb.endswith(("ss", "us", "is")):
        return verb[:-1]
    return None


def action_question(subject: str, phrase: str) -> str:
    """``("A panda", "performs a handstand")`` -> ``"Does the panda perform a handstand?"``.

    A phrase that is already progressive ("is sitting", "doing a handstand") becomes an
    "Is ..." question; one whose first word is no third-person verb is asked verbatim
    ("Is it true that ...?") rather than garbled.
    """
    who, _ = subject_forms(subject)
    head, _, rest = phrase.strip().partition(" ")
    if head in ("is", "are") and rest:
        return f"Is {who} {rest}?"
    if head.endswith("ing"):
        return f"Is {who} {phrase.strip()}?"
    base = base_form(head)
    if base is None:
        return f"Is it true that {who} {phrase.strip()}?"
    return f"Does {who} {base}{' ' + rest if rest else ''}?"


def subject_question(subject: str) -> str:
    """``"A panda"`` -> ``"Is this a panda?"``; ``"Batman"`` -> ``"Is this Batman?"``."""
    return f"Is this {subject_forms(subject)[1]}?"


# -- reading yes / no off the logits ------------------------------------------------------


def answer_token_ids(tokenizer) -> tuple[list[int], list[int]]:
    """The single-token ids of "Yes"/"yes" (with and without a leading space) and of "No"/"no".

    Tokenizers differ in whether the first answer token carries a space ("Ġyes") and in
    case; every variant that is one token (and not the unknown token) is kept, so P(yes)
    does not depend on which spelling the model prefers.
    """
    unk = getattr(tokenizer, "unk_token_id", None)

    def ids(words):
        out = []
        for word in words:
            for variant in (word, " " + word):
                enc = tokenizer.encode(variant, add_special_tokens=False)
                if len(enc) == 1 and enc[0] != unk and enc[0] not in out:
                    out.append(enc[0])
        return out

    yes, no = ids(YES_WORDS), ids(NO_WORDS)
    return yes, [i for i in no if i not in yes]


def yes_probability(logits: torch.Tensor, yes_ids: list[int], no_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For next-token logits (N, V): P(yes) among the yes/no tokens, the yes/no share of all
    the probability (a low share: the model wanted to say something else), and whether the
    single most likely of those tokens is a "yes" one."""
    logits = logits.float()
    cand = logits[:, yes_ids + no_ids]
    p = cand.softmax(dim=-1)
    p_yes = p[:, :len(yes_ids)].sum(dim=-1)
    mass = logits.softmax(dim=-1)[:, yes_ids + no_ids].sum(dim=-1)
    top_is_yes = cand.argmax(dim=-1) < len(yes_ids)
    return p_yes, mass, top_is_yes


# -- the model ----------------------------------------------------------------------------


def _one_line(err: Exception, limit: int = 300) -> str:
    """An exception as one short line (the CLI prints an ActionBenchError as one line; transformers' messages span several)."""
    return " ".join(str(err).split())[:limit]


def _download_hint(model: str) -> str:
    return (f"on a machine with internet run `huggingface-cli download {DEFAULT_MODEL if not _HUB_ID.match(model) else model} "
            "--local-dir DIR` (or `hf download ...`), copy DIR here and pass it: `actionbench judge RUN --judges vqa "
            "--judge-model DIR` (run configs: judge_options: {vqa: {model: DIR}})")


def _check_where(model: str) -> None:
    """Fail early, naming the folder, when ``model`` is meant as a path that is not there.

    A name that exists on disk is a folder; one that cannot be a hub id ("/data/qwen",
    "./m", "C:\\m") is a missing folder and is not sent to the hub at all.
    """
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ActionBenchError(f"vqa judge: model {model!r} is a file; give the folder that holds config.json")
        return
    if not _HUB_ID.match(model) or model.startswith("."):
        raise ActionBenchError(f"vqa judge: no such model folder {model!r}; {_download_hint(model)}")


def _torch_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto``: bfloat16 on a GPU (half the memory, the precision these models ship in), float32 on the CPU."""
    if dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise ActionBenchError(f"vqa judge: dtype {dtype!r}: expected auto, float32, bfloat16 or float16") from None


def load_vqa_model(model: str, device: str = "cpu", dtype: str = "auto"):
    """``(processor, model)`` for a hub id or local folder, as a one-line ActionBenchError when it fails.

    Offline, only a model already on disk loads; the error says how to fetch one. transformers
    5.x builds Qwen2-VL's processor with a video processor that needs torchvision, which this
    project's CPU install leaves out; that case is named too.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    _check_where(model)
    try:
        processor = AutoProcessor.from_pretrained(model)
        net = AutoModelForImageTextToText.from_pretrained(model, dtype=_torch_dtype(dtype, device))
    except ActionBenchError:
        raise
    except ImportError as err:
        hint = " (pip install torchvision, the build matching your torch)" if "torchvision" in str(err).lower() else ""
        raise ActionBenchError(f"vqa judge: model {model!r} needs a missing package{hint}: {_one_line(err)}") from None
    except Exception as err:  # no such hub id, no internet, not an image-text-to-text model, ...
        raise ActionBenchError(f"vqa judge: could not load model {model!r} ({type(err).__name__}: {_one_line(err)}); "
                               f"{_download_hint(model)}") from None
    if getattr(processor, "chat_template", None) is None and getattr(getattr(processor, "tokenizer", None), "chat_template", None) is None:
        raise ActionBenchError(f"vqa judge: model {model!r} has no chat template; use an instruction-tuned (chat) model")
    return processor, net.eval().to(device)


class VqaModel:
    """A processor and model: ``prompt(question)`` and ``next_token_logits(images, questions)``."""

    def __init__(self, processor, model, device: str = "cpu"):
        self.processor, self.model, self.device = processor, model, device
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.tokenizer.padding_side = "left"  # the last position is every row's next token
        params = inspect.signature(model.forward).parameters
        self._inputs = set(params)
        self._keep_one = "logits_to_keep" in params  # the full-vocabulary logits of one position, not of the prompt

    def prompt(self, question: str) -> str:
        """The model's own chat text for one image and the question, ending where the answer starts."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question + ANSWER_HINT}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    @torch.no_grad()
    def next_token_logits(self, images: list, questions: list[str]) -> torch.Tensor:
        """(N, V) float32 logits of the first answer token, one row per (image, question)."""
        texts = [self.prompt(q) for q in questions]
        inputs = self.processor(text=texts, images=[[im] for im in images], padding=True, return_tensors="pt")
        dtype = self.model.dtype
        kwargs = {k: (v.to(self.device, dtype) if torch.is_floating_point(v) else v.to(self.device))
                  for k, v in inputs.items() if k in self._inputs and torch.is_tensor(v)}
        if self._keep_one:
            kwargs["logits_to_keep"] = 1
        return self.model(**kwargs).logits[:, -1, :].float().cpu()


# -- the judge ----------------------------------------------------------------------------


def _rgb(image):
    """The image decoded as RGB, so a truncated or unreadable file fails here, for that image alone."""
    image.load()
    return image.convert("RGB")


def _option(value, kind, name: str, lo: float, hi: float | None = None):
    """A judge option from YAML or ``--option vqa.NAME=VALUE`` (a string there), checked."""
    try:
        v = kind(value)
    except (TypeError, ValueError):
        raise ActionBenchError(f"vqa judge: {name} must be {'a whole number' if kind is int else 'a number'} (got {value!r})") from None
    if v < lo or (hi is not None and v > hi):
        raise ActionBenchError(f"vqa judge: {name} must be in [{lo}, {hi if hi is not None else 'inf'}] (got {v})")
    return v


@register_judge
class VqaJudge(Judge):
    name = "vqa"
    sees = ("a vision-language model's answer to two yes/no questions per image, \"Does the {subject} {action}?\" "
            "(the action's phrase) and \"Is this {subject}?\", read as P(yes) from its next-token logits")
    blind_to = ("the exemplars (it is asked the action's name, so an action without a phrase is 'cannot tell' and one "
                "salute is not told from another); whatever its training missed; leading questions (such models say yes "
                "too readily); not validated against human ratings here; needs weights on disk or a hub download")

    def __init__(self, context: JudgeContext, model: str = DEFAULT_MODEL, threshold: float = 0.5, batch_size: int = 8,
                 dtype: str = "auto", vqa: VqaModel | None = None, **options):
        super().__init__(context, **options)
        if options:  # a typo (`--option vqa.treshold=0.7`) would otherwise judge with the default, silently
            raise ActionBenchError(f"vqa judge: unknown option(s) {', '.join(sorted(options))}; known: model, threshold, batch_size, dtype")
        self.threshold = _option(threshold, float, "threshold", 0.0, 1.0)
        self.batch_size = _option(batch_size, int, "batch_size", 1)
        self.model_name = str(model)
        self.vqa = vqa or VqaModel(*load_vqa_model(self.model_name, context.device, str(dtype)), device=context.device)
        self.yes_ids, self.no_ids = answer_token_ids(self.vqa.tokenizer)
        self.phrases = {name: s.phrase for name, s in context.action_sets.items() if getattr(s, "phrase", None)}

    def phrase(self, action: str) -> str | None:
        """The action's phrase from the benchmark in use, else the paper's (as the clip judge)."""
        return self.phrases.get(action) or action_phrase(action)

    def questions(self, item: Item) -> dict[str, str]:
        """``{"action": ..., "subject": ...}``; no action question for an action without a phrase."""
        out = {}
        phrase = self.phrase(item.action)
        if phrase:
            out["action"] = action_question(item.subject, phrase)
        out["subject"] = subject_question(item.subject)
        return out

    def judge(self, images: list, items: list[Item]) -> list[Verdict]:
        if not self.yes_ids or not self.no_ids:
            why = f"the tokenizer of {self.model_name!r} has no single-token yes/no"
            return [self._verdict(item, {}, {"action": why, "subject": why}) for item in items]
        queries, errors = [], [{} for _ in items]  # (item index, kind, image, question); per item: kind -> reason
        for i, (image, item) in enumerate(zip(images, items)):
            qs = self.questions(item)
            if "action" not in qs:
                errors[i]["action"] = f"no phrase for action {item.action!r}"
            try:
                rgb = _rgb(image)
            except Exception as err:
                errors[i].update({k: f"image: {type(err).__name__}: {_one_line(err, 200)}" for k in qs})
                continue
            queries += [(i, kind, rgb, q) for kind, q in qs.items()]
        answers = [{} for _ in items]
        for (i, kind, _, _), result in zip(queries, self._answer(queries)):
            (answers if isinstance(result, tuple) else errors)[i][kind] = result
        return [self._verdict(item, answers[i], errors[i]) for i, item in enumerate(items)]

    def _answer(self, queries: list) -> list:
        """One result per query: ``(p_yes, mass, top_is_yes)`` or the reason it failed (a string).

        Queries go in batches of ``batch_size``; a batch that fails is retried one query at a
        time, so one bad image costs only its own verdict.
        """
        out = []
        for start in range(0, len(queries), self.batch_size):
            chunk = queries[start:start + self.batch_size]
            try:
                out += self._score(chunk)
            except Exception:
                for q in chunk:
                    try:
                        out += self._score([q])
                    except Exception as err:
                        out.append(f"{type(err).__name__}: {_one_line(err, 200)}")
        return out

    def _score(self, chunk: list) -> list[tuple[float, float, bool]]:
        logits = self.vqa.next_token_logits([q[2] for q in chunk], [q[3] for q in chunk])
        p_yes, mass, top = yes_probability(logits, self.yes_ids, self.no_ids)
        return [(float(p), float(m), bool(t)) for p, m, t in zip(p_yes, mass, top)]

    def _verdict(self, item: Item, answers: dict, errors: dict) -> Verdict:
        """True/False from P(yes) and the threshold where there is an answer, else None; the note holds both."""
        note, ok = {}, {}
        for kind in ("action", "subject"):
            if kind in answers:
                p, mass, top = answers[kind]
                ok[kind] = p >= self.threshold
                note.update({f"p_{kind}_yes": round(p, 6), f"answer_{kind}": "yes" if top else "no", f"mass_{kind}": round(mass, 4)})
            else:
                ok[kind] = None
                if kind in errors:
                    note[f"error_{kind}"] = errors[kind]
        score = note.get("p_action_yes")
        return Verdict(item.image_id, self.name, ok["action"], ok["subject"], score=score, note=json.dumps(note, separators=(",", ":")))
