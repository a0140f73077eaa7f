"""A trimmed CLIP BPE tokenizer for the ActionWorld: CLIP's tokens for the world's words only.

ActionWorld v3's text encoder is 1,024 wide (SD 2.1-base's width). With CLIP's full
49,408-token vocabulary its embedding alone would be 50.6 M parameters (101 MB in fp16);
the world's captions use a few hundred tokens of it. :func:`trimmed_clip_tokenizer` keeps
CLIP's BPE algorithm and merges but only

- the merges that CLIP's tokenizer applies to a given list of words (and the tokens they make),
- the 512 byte-level base symbols (each byte's character, with and without ``</w>``),
- ``<|startoftext|>`` and ``<|endoftext|>``,

renumbered densely in CLIP's order (bytes first, then merges by rank, then the two special
tokens). Every listed word tokenizes into exactly CLIP's token strings: BPE applies, at each
step, the lowest-ranked merge among the adjacent pairs, and every merge CLIP applies to the
word is kept, with its rank order, so the same merge wins at every step. Any other text
still tokenizes (into shorter pieces, down to single bytes) and decodes back to itself.

The world's vocabulary is committed in ``actionbench/world/tokenizer/`` (``WORLD_VOCAB_DIR``),
where ``build_pipeline`` finds it for ``PipelineSpec(text_vocab="world")``: a model's
token ids must not move when a caption file changes. After editing ``world.yaml`` or
``world-v3.yaml``, rebuild it with ``python -m actionbench.world.vocab``: every id already
there is kept and new tokens are appended (``--renumber`` numbers afresh in CLIP's order,
which breaks every model trained on the old ids; the tests say when
a world word no longer tokenizes as CLIP does).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable
from pathlib import Path

import yaml

from ..errors import ActionBenchError
from ..models import WORLD_VOCAB_DIR, clip_style_tokenizer
from ..tokenizer import _bytes_to_unicode, clip_tokenizer, clip_tokenizer_dir

WORLD_DIR = Path(__file__).parent
WORLD_YAMLS = (WORLD_DIR / "world.yaml", WORLD_DIR / "world-v3.yaml")  # the second is optional
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
END_OF_WORD = "</w>"

# Words the methods write into prompts besides the world's captions (methods/defaults/*.yaml,
# methods/reversion.py): initializer and identifier words, class prompts, ADI's
# action-different phrases, ReVersion's prepositions and stop words, and words that prompts
# and initializers commonly use. tests/test_world_vocab.py checks this covers the methods' words.
METHOD_WORDS = (
    # initializers / identifiers / class prompts (methods/defaults/*.yaml)
    "person", "and", "ktn", "sks", "a photo of a person",
    # ADI's action-different phrases (methods/defaults/adi.yaml)
    "stands", "walks", "waves", "squats", "sits",
    # ReVersion's basis prepositions (positives) and stop words (methods/reversion.py)
    "above", "across", "after", "against", "along", "among", "around", "at", "before", "behind", "below",
    "beneath", "beside", "between", "beyond", "by", "down", "from", "in", "inside", "into", "near", "of",
    "off", "on", "onto", "opposite", "out", "outside", "over", "past", "through", "throughout", "to",
    "toward", "towards", "under", "underneath", "up", "upon", "via", "with", "within", "without",
    "a", "an", "the", "or", "is", "are", "was", "his", "her", "their", "its",
    # common class / prompt words
    "man", "woman", "boy", "girl", "people", "human", "animal", "photo", "picture", "image", "pose", "action",
    "doing", "does", "is doing", "performing", "someone", "body", "arms", "hands", "legs", "standing", "sitting",
)
DIGITS = tuple("0123456789")
PUNCTUATION = (",", ".", "!", "?", ":", ";", "'", '"', "-", "(", ")", "/", "&", "'s", "...")


# --------------------------------------------------------------------------- the word list


def phrase_strings(node) -> list[str]:
    """Every string value in a parsed YAML tree (mapping keys and non-strings are skipped)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in phrase_strings(value)]
    if isinstance(node, (list, tuple)):
        return [s for value in node for s in phrase_strings(value)]
    return []


def world_phrases(paths: Iterable[str | Path] = WORLD_YAMLS) -> list[str]:
    """The phrases of the world files that exist (``subjects``, ``actions``, ``contexts``, v3's
    ``outfits`` and ``scenes``, ...: every string value), in file order."""
    phrases = []
    for path in map(Path, paths):
        if not path.exists():
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ActionBenchError(f"{path} is not valid YAML: {err}") from err
        phrases += phrase_strings(data)
    return phrases


def world_words(paths: Iterable[str | Path] = WORLD_YAMLS) -> list[str]:
    """The word list of the world's vocabulary: the words of every world phrase, the methods'
    words (:data:`METHOD_WORDS`), digits and punctuation; unique, sorted."""
    words = {w for phrase in world_phrases(paths) for w in phrase.split()}
    words |= {w for phrase in METHOD_WORDS for w in phrase.split()}
    return sorted(words | set(DIGITS) | set(PUNCTUATION))


# --------------------------------------------------------------------------- trimming CLIP's BPE


def clip_merges() -> list[tuple[str, str]]:
    """CLIP's 48,894 BPE merges, in rank order."""
    lines = (clip_tokenizer_dir() / "merges.txt").read_text(encoding="utf-8").split("\n")
    return [tuple(line.split()) for line in lines[1:] if line.strip()]


def base_symbols() -> list[str]:
    """The 512 byte-level base symbols, in CLIP's id order: 256 bytes, then each with ``</w>``."""
    chars = list(_bytes_to_unicode().values())
    return chars + [c + END_OF_WORD for c in chars]


def _check_words(words) -> list[str]:
    """``words`` as a list of non-empty strings, else an ActionBenchError."""
    if isinstance(words, str) or not isinstance(words, Iterable):
        raise ActionBenchError(f"words must be a list of strings, not {type(words).__name__}")
    words = list(words)
    bad = [w for w in words if not isinstance(w, str) or not w.strip()]
    if bad:
        raise ActionBenchError(f"words must be non-empty strings; got {bad[:5]!r}")
    if not words:
        raise ActionBenchError("the word list is empty")
    return words


def needed_merges(words: Iterable[str], merges: list[tuple[str, str]] | None = None) -> set[tuple[str, str]]:
    """The merges CLIP's tokenizer applies to ``words``.

    Each token past the base symbols is made by exactly one merge, so the merges applied to
    a word are the derivation trees of its final tokens: each token's merge, then its two
    halves' merges, down to base symbols.
    """
    merges = merges if merges is not None else clip_merges()
    maker = {a + b: (a, b) for a, b in merges}
    full = clip_tokenizer()  # the pad token does not change how words split into BPE tokens
    needed: set[tuple[str, str]] = set()
    todo = [tok for word in _check_words(words) for tok in full.tokenize(word)]
    while todo:
        tok = todo.pop()
        pair = maker.get(tok)
        if pair is not None and pair not in needed:
            needed.add(pair)
            todo += pair
    return needed


def trimmed_vocabulary(words: Iterable[str], existing: tuple[list[str], list[tuple[str, str]]] | None = None
                       ) -> tuple[list[str], list[tuple[str, str]]]:
    """(tokens by id, merges by rank) of the trimmed tokenizer for ``words``.

    With ``existing`` (the tokens and merges of a tokenizer built before), the result is
    append-only: every existing token keeps its id, new tokens follow in CLIP's order, and
    the merges are the union of both, in CLIP's rank order (a superset of the needed merges
    in CLIP's ranks still tokenizes every listed word as CLIP does)."""
    merges = clip_merges()
    keep = needed_merges(words, merges)
    if existing is not None:
        unknown = [m for m in existing[1] if m not in set(merges)]
        if unknown:
            raise ActionBenchError(f"the existing tokenizer has merges CLIP does not ({unknown[:3]!r}): "
                                   "it was not made by this module; rebuild it with --renumber")
        keep |= set(existing[1])
    kept = [m for m in merges if m in keep]  # CLIP's rank order
    tokens = base_symbols() + [a + b for a, b in kept] + [BOS, EOS]
    if len(set(tokens)) != len(tokens):
        raise ActionBenchError("the trimmed vocabulary has repeated tokens: CLIP's merges file looks damaged")
    if existing is not None:
        old = list(existing[0])
        tokens = old + [t for t in tokens if t not in set(old)]
    return tokens, kept


def read_trimmed_files(folder: str | Path) -> tuple[list[str], list[tuple[str, str]]] | None:
    """(tokens by id, merges by rank) of a tokenizer folder :func:`write_trimmed_files` wrote,
    or None when ``folder`` has no ``vocab.json``."""
    folder = Path(folder)
    if not (folder / "vocab.json").exists():
        return None
    try:
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        lines = (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
    except (OSError, json.JSONDecodeError) as err:
        raise ActionBenchError(f"{folder}: not a readable tokenizer folder ({err}); rebuild it with --renumber") from err
    ids = sorted(vocab.values())
    if ids != list(range(len(ids))):
        raise ActionBenchError(f"{folder}/vocab.json: ids are not 0..{len(ids) - 1}; rebuild it with --renumber")
    tokens = sorted(vocab, key=vocab.get)
    return tokens, [tuple(line.split()) for line in lines[1:] if line.strip()]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_trimmed_files(words: Iterable[str], out_dir: str | Path, max_length: int = 77, keep_ids: bool = False) -> Path:
    """Write ``vocab.json``, ``merges.txt``, ``tokenizer_config.json`` and ``words.txt`` (the word
    list, for reference) of the trimmed tokenizer for ``words`` into ``out_dir``. With
    ``keep_ids``, a tokenizer already in ``out_dir`` keeps every id it has (new tokens are
    appended; none is dropped), so models trained on it still read it right."""
    if not isinstance(max_length, int) or max_length < 2:
        raise ActionBenchError(f"max_length must be an int >= 2 (bos + eos), not {max_length!r}")
    words = _check_words(words)
    out_dir = Path(out_dir)
    tokens, merges = trimmed_vocabulary(words, read_trimmed_files(out_dir) if keep_ids else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(out_dir / "vocab.json", json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False, indent=0))
    _write_atomic(out_dir / "merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    config = {"model_max_length": max_length, "bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS,
              "do_lower_case": True, "tokenizer_class": "CLIPTokenizer"}
    _write_atomic(out_dir / "tokenizer_config.json", json.dumps(config, indent=1) + "\n")
    _write_atomic(out_dir / "words.txt", "".join(w + "\n" for w in sorted(set(words))))
    return out_dir


def load_trimmed_tokenizer(folder: str | Path, pad_token: str = EOS, max_length: int = 77):
    """A ``transformers.CLIPTokenizer`` from a folder :func:`write_trimmed_files` wrote, with
    ``clip_tokenizer``'s conventions (``build_pipeline`` loads it the same way)."""
    return clip_style_tokenizer(folder, pad_token, max_length)


def trimmed_clip_tokenizer(words: Iterable[str], out_dir: str | Path, pad_token: str = EOS, max_length: int = 77):
    """Write the trimmed CLIP tokenizer for ``words`` into ``out_dir`` and load it.

    ``pad_token`` as for :func:`actionbench.tokenizer.clip_tokenizer`: ``"<|endoftext|>"``
    (SD 1.x) or ``"!"`` (SD 2.x; a base symbol, id 0 here as in CLIP).
    """
    return load_trimmed_tokenizer(write_trimmed_files(words, out_dir, max_length), pad_token, max_length)


def world_tokenizer(pad_token: str = "!", max_length: int = 77):
    """The committed world tokenizer (``WORLD_VOCAB_DIR``), as ``build_pipeline`` loads it."""
    return load_trimmed_tokenizer(WORLD_VOCAB_DIR, pad_token, max_length)


def main(argv: list[str] | None = None) -> None:
    """``python -m actionbench.world.vocab [--out DIR]``: (re)build the world's trimmed tokenizer."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(WORLD_VOCAB_DIR), help="folder to write (default: %(default)s)")
    parser.add_argument("--renumber", action="store_true",
                        help="number the tokens afresh in CLIP's order (default: keep every id already in --out and "
                             "append new tokens; renumbering breaks every model trained on the old ids)")
    args = parser.parse_args(argv)
    words = world_words()
    before = read_trimmed_files(args.out)
    out = write_trimmed_files(words, args.out, keep_ids=not args.renumber)
    size = len(json.loads((out / "vocab.json").read_text(encoding="utf-8")))
    kept = "renumbered" if args.renumber or before is None else f"{size - len(before[0])} appended, {len(before[0])} ids kept"
    print(f"{out}: {len(words)} words -> {size} tokens ({kept})")


if __name__ == "__main__":
    main()
