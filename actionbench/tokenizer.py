"""The real CLIP BPE tokenizer, built offline from the vocabulary in ``open_clip_torch``.

Stable Diffusion 1.x and 2.x both use OpenAI's CLIP BPE vocabulary (49,408 tokens).
No hub download is possible here, but the ``open_clip_torch`` wheel ships that exact
vocabulary as ``bpe_simple_vocab_16e6.txt.gz``; this module turns it into the
``vocab.json`` / ``merges.txt`` pair that ``transformers.CLIPTokenizer`` reads (the same
files as ``openai/clip-vit-large-patch14``'s tokenizer) and caches them.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path

from .errors import ActionBenchError

VOCAB_SIZE = 49408


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def bpe_vocab_path() -> Path:
    """Path of the CLIP BPE merges file shipped in the ``open_clip_torch`` wheel (not imported)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ActionBenchError(
            "the CLIP vocabulary needs the open_clip_torch package: pip install --no-deps open_clip_torch"
        )
    path = Path(spec.submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.exists():
        raise ActionBenchError(f"{path} is missing: reinstall open_clip_torch")
    return path


def _cache_dir() -> Path:
    root = os.environ.get("ACTIONBENCH_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "actionbench"))
    return Path(root) / "clip-tokenizer"


def write_clip_tokenizer_files(out_dir: str | Path) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` of the CLIP tokenizer into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = gzip.open(bpe_vocab_path(), "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    byte_chars = list(_bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    assert len(tokens) == VOCAB_SIZE, len(tokens)
    tmp = out_dir / "vocab.json.tmp"
    tmp.write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    os.replace(tmp, out_dir / "vocab.json")
    tmp = out_dir / "merges.txt.tmp"
    tmp.write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / "merges.txt")
    config = {"model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
              "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "do_lower_case": True,
              "tokenizer_class": "CLIPTokenizer"}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
    return out_dir


@lru_cache(maxsize=1)
def clip_tokenizer_dir() -> Path:
    """A folder holding the CLIP tokenizer files (built once, then reused)."""
    d = _cache_dir()
    if not all((d / f).exists() for f in ("vocab.json", "merges.txt", "tokenizer_config.json")):
        write_clip_tokenizer_files(d)
    return d


def clip_tokenizer(pad_token: str = "<|endoftext|>"):
    """A ``transformers.CLIPTokenizer`` with the real CLIP vocabulary (77-token context).

    ``pad_token`` is ``"<|endoftext|>"`` for SD 1.x and ``"!"`` for SD 2.x.
    """
    from transformers import CLIPTokenizer

    # from_pretrained reads vocab.json/merges.txt in every transformers version
    # (4.x takes file paths in __init__, 5.x takes the parsed vocabulary).
    return CLIPTokenizer.from_pretrained(str(clip_tokenizer_dir()), pad_token=pad_token, model_max_length=77)
