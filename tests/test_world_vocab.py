"""The trimmed CLIP tokenizer of the ActionWorld (actionbench/world/vocab.py) and the v3 text side
of ``build_pipeline`` (``PipelineSpec.text_vocab`` / ``text_max_length``)."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import pytest
import torch
import yaml

import methods
from actionbench.bench import load_action
from actionbench.errors import ActionBenchError
from actionbench.models import WORLD_VOCAB_DIR, PipelineSpec, build_pipeline, load_pipeline
from actionbench.tokenizer import clip_tokenizer
from actionbench.world.vocab import (
    BOS,
    EOS,
    WORLD_YAMLS,
    phrase_strings,
    trimmed_clip_tokenizer,
    world_phrases,
    world_tokenizer,
    world_words,
)
from methods.tokens import add_placeholder

ROOT = Path(__file__).resolve().parents[1]
WORLD_BENCH = ROOT / "actionbench" / "world" / "bench"
OOV = ["batman", "xyzzy", "a batman doing xyzzy in gotham", "supercalifragilistic"]


@pytest.fixture(scope="module")
def words() -> list[str]:
    return world_words()


@pytest.fixture(scope="module")
def full() -> dict:
    """CLIP's full tokenizer with either pad token."""
    return {pad: clip_tokenizer(pad_token=pad) for pad in ("!", EOS)}


@pytest.fixture(scope="module")
def trimmed(words, tmp_path_factory):
    """Trimmed tokenizers for the world words, with either pad token (the same files)."""
    out = tmp_path_factory.mktemp("vocab")
    return {pad: trimmed_clip_tokenizer(words, out, pad_token=pad) for pad in ("!", EOS)}


def world_captions() -> list[str]:
    """Captions of each world file: "subject action context" (v2b) or "subject action outfit scene" (v3).

    Every (subject, action) pair, with the other parts cycling; and every combination of the
    other parts (outfit x scene) after the first subject and action.
    """
    captions = []
    for path in WORLD_YAMLS:
        if not path.exists():
            continue
        data = yaml.safe_load(path.read_text())
        parts = [[v["phrase"] if isinstance(v, dict) else v for v in data[key].values()]
                 for key in ("subjects", "actions", "outfits", "scenes", "contexts") if isinstance(data.get(key), dict)]
        subjects, actions, rest = parts[0], parts[1], parts[2:]
        for i, (subject, action) in enumerate(itertools.product(subjects, actions)):
            captions.append(" ".join([subject, action] + [r[i % len(r)] for r in rest]))
        captions += [" ".join([subjects[0], actions[0], *combo]) for combo in itertools.product(*rest)]
    return captions


def method_words() -> set[str]:
    """The words the methods put in prompts: initializers, identifiers, class prompts, phrases, ReVersion's lists."""
    from methods.reversion import PREPOSITIONS, STOP_WORDS

    found = set(PREPOSITIONS) | set(STOP_WORDS)
    for path in (ROOT / "methods" / "defaults").glob("*.yaml"):
        cfg = yaml.safe_load(path.read_text()) or {}
        for key in ("initializer", "identifier", "class_prompt", "action_different_phrases"):
            value = cfg.get(key)
            for phrase in value if isinstance(value, list) else [value] if value else []:
                found |= set(str(phrase).split())
    return found


# -- the word list ----------------------------------------------------------------------


def test_word_list_covers_world_and_methods(words):
    have = set(words)
    assert {"a", "an", "panda", "old", "handstand", "cheering", "prayer", "street", "night"} <= have
    assert {w for phrase in world_phrases() for w in phrase.split()} <= have
    assert method_words() <= have, method_words() - have
    assert set("0123456789") <= have and {",", ".", "!", "?"} <= have
    assert "batman" not in have and "xyzzy" not in have


def test_phrase_strings_and_v3_files(tmp_path):
    tree = {"a": "one two", "b": {"phrase": "three", "human": True, "n": 3}, "c": ["four", {"x": "five"}], "d": None}
    assert phrase_strings(tree) == ["one two", "three", "four", "five"]
    v3 = tmp_path / "world-v3.yaml"
    v3.write_text(yaml.safe_dump({"subjects": {"k": {"phrase": "a knight"}}, "outfits": {"red": "in red armour"},
                                  "scenes": {"moon": {"phrase": "on the moon", "unnamed": False}}}))
    words = world_words([WORLD_YAMLS[0], v3, tmp_path / "missing.yaml"])
    assert {"knight", "armour", "moon", "panda"} <= set(words)
    bad = tmp_path / "bad.yaml"
    bad.write_text("subjects: [unclosed\n")
    with pytest.raises(ActionBenchError, match="not valid YAML"):
        world_phrases([bad])


# -- the trimmed tokenizer ----------------------------------------------------------------


@pytest.mark.parametrize("pad", ["!", EOS])
def test_world_words_and_captions_tokenize_as_clip(words, full, trimmed, pad):
    tok, ref = trimmed[pad], full[pad]
    captions = world_captions()
    assert len(captions) > 100 and (not WORLD_YAMLS[1].exists() or "a man salutes in a red striped shirt in a park" in captions)
    for text in words + captions + ["A photo of a person doing a handstand, at night!", "a panda waves in a red striped shirt in a forest"]:
        assert tok.tokenize(text) == ref.tokenize(text), text
        ids = tok(text).input_ids
        assert tok.convert_ids_to_tokens(ids) == ref.convert_ids_to_tokens(ref(text).input_ids), text


def test_out_of_vocabulary_text_splits_and_decodes(trimmed, full):
    tok = trimmed["!"]
    for text in OOV:
        pieces = tok.tokenize(text)
        assert len(pieces) >= len(full["!"].tokenize(text)) and "".join(pieces).replace("</w>", "") == text.replace(" ", "")
        ids = tok(text).input_ids
        assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
        assert tok.eos_token_id not in ids[1:-1]  # no unknown-token fallback (unk is <|endoftext|>)
        assert tok.decode(ids, skip_special_tokens=True) == text
    assert len(tok.tokenize("xyzzy")) > 1  # pieces: not one CLIP token
    text = "Batman's 1984 cape -- xyzzy!"  # digits split one by one, as CLIP does: compare with CLIP's decoding
    assert tok.decode(tok(text).input_ids, skip_special_tokens=True) == full["!"].decode(full["!"](text).input_ids, skip_special_tokens=True)


def test_special_ids_and_padding(trimmed):
    sd2, sd1 = trimmed["!"], trimmed[EOS]
    n = len(sd2)
    assert sd2.bos_token_id == n - 2 and sd2.eos_token_id == n - 1 and sd2.convert_ids_to_tokens([n - 2, n - 1]) == [BOS, EOS]
    assert sd2.pad_token_id == 0 and sd1.pad_token_id == sd1.eos_token_id == n - 1  # "!" is byte 0 as in CLIP
    ids = sd2("a cat", padding="max_length", max_length=6).input_ids
    assert ids[0] == n - 2 and ids[3] == n - 1 and ids[4:] == [0, 0]


def test_added_placeholder_gets_the_next_id(words, tmp_path):
    tok = trimmed_clip_tokenizer(words, tmp_path, pad_token="!")
    size = len(json.loads((tmp_path / "vocab.json").read_text()))
    assert len(tok) == size
    tok.add_tokens(["<A>"])
    assert tok.convert_tokens_to_ids("<A>") == size and add_placeholder(tok, "<A>") == size
    ids = tok("a panda <A> in a park", add_special_tokens=False).input_ids
    assert ids[2] == size and tok.convert_ids_to_tokens(ids[:2] + ids[3:]) == ["a</w>", "panda</w>", "in</w>", "a</w>", "park</w>"]


def test_vocabulary_size(trimmed, capsys):
    tok = trimmed["!"]
    with capsys.disabled():
        print(f"\nworld vocabulary: {len(tok)} tokens (512 byte symbols + {len(tok) - 514} merges + 2 special)")
    assert 512 + 2 < len(tok) < 2500


def test_bad_input_is_a_clear_error(tmp_path):
    for bad in ([], ["ok", ""], "a string", [3]):
        with pytest.raises(ActionBenchError):
            trimmed_clip_tokenizer(bad, tmp_path)
    with pytest.raises(ActionBenchError, match="max_length"):
        trimmed_clip_tokenizer(["cat"], tmp_path, max_length=1)
    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(ActionBenchError, match="merges.txt"):  # a text_vocab folder that is not a tokenizer
        build_pipeline(PipelineSpec(text_vocab=str(tmp_path)))


def test_committed_world_tokenizer_is_current(words, full):
    """The committed folder tokenizes every current world word as CLIP does; else rebuild it."""
    tok = world_tokenizer()
    stale = [w for w in words + world_captions() if tok.tokenize(w) != full["!"].tokenize(w)]
    assert not stale, f"{WORLD_VOCAB_DIR} is stale for {stale[:5]}: run `python -m actionbench.world.vocab`"


# -- PipelineSpec's text side ---------------------------------------------------------------


def test_default_specs_keep_clip_text_side():
    for flavor, pad in (("sd2", 0), ("sd1", 49407)):
        cfg = build_pipeline(PipelineSpec(flavor=flavor)).text_encoder.config
        assert (cfg.vocab_size, cfg.max_position_embeddings, cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (
            49408, 77, 49406, 49407, pad)
    pipe = build_pipeline(PipelineSpec(text_max_length=24))
    assert pipe.tokenizer.model_max_length == 24 and pipe.text_encoder.config.max_position_embeddings == 24
    assert len(pipe.tokenizer) == 49408


def test_bad_text_spec_is_a_clear_error():
    with pytest.raises(ActionBenchError, match="text_vocab"):
        build_pipeline(PipelineSpec(text_vocab="no-such-folder"))
    with pytest.raises(ActionBenchError, match="text_max_length"):
        build_pipeline(PipelineSpec(text_max_length=1))


V3_TINY = dict(text_vocab="world", text_width=1024, text_layers=1, text_ffn=1024, text_heads=16, text_max_length=24)


def test_v3_text_side_saves_loads_and_learns(tmp_path):
    pipe = build_pipeline(PipelineSpec(**V3_TINY))
    tok, te = pipe.tokenizer, pipe.text_encoder
    n = len(tok)
    assert te.get_input_embeddings().weight.shape == (n, 1024) and n < 2500
    assert (te.config.bos_token_id, te.config.eos_token_id, te.config.pad_token_id) == (tok.bos_token_id, tok.eos_token_id, 0)
    assert te.config.max_position_embeddings == tok.model_max_length == 24
    assert pipe.unet.config.cross_attention_dim == 1024

    pipe.save_pretrained(tmp_path / "v3")
    loaded = load_pipeline(str(tmp_path / "v3"))
    assert len(loaded.tokenizer) == n and loaded.tokenizer.model_max_length == 24 and loaded.tokenizer.pad_token_id == 0
    prompt = "a panda performs a handstand in a park"
    assert loaded.tokenizer(prompt).input_ids == tok(prompt).input_ids
    with torch.no_grad():
        ids = tok([prompt], padding="max_length", max_length=24, return_tensors="pt").input_ids
        torch.testing.assert_close(loaded.text_encoder(ids)[0], te(ids)[0])

    # a learned token through methods: Textual Inversion, 2 steps, on the loaded pipeline
    full = load_action(WORLD_BENCH / "handstand", verify_images=False)
    action = dataclasses.replace(full, exemplars=full.exemplars[:2])
    cfg = methods.get_method("textual-inversion").Config(steps=2, batch_size=1, checkpoint_every=100)
    learned = methods.learn(loaded, action, "textual-inversion", cfg, out=tmp_path / "ti.safetensors", progress=False)
    assert learned.tensors["<A>"].shape == (1, 1024)
    assert loaded.tokenizer.convert_tokens_to_ids("<A>") == n
    states, _ = methods.get_method("textual-inversion").apply(loaded, learned).encode(["a panda <A> in a park"])
    assert states.shape == (1, 24, 1024)
    images = methods.generate(loaded, learned, "a panda {} in a park", n=1, steps=2, size=32)
    assert images[0].size == (32, 32)


def test_layerwise_tokens_slice_the_short_v3_context(tmp_path):
    """P+ on a 24-token text side: every cross-attention layer reads its own 24 rows (not 77)."""
    from methods.layerwise import LayerwiseAttnProcessor

    pipe = build_pipeline(PipelineSpec(**V3_TINY))
    full = load_action(WORLD_BENCH / "handstand", verify_images=False)
    action = dataclasses.replace(full, exemplars=full.exemplars[:2])
    cfg = methods.get_method("pplus").Config(steps=1, batch_size=1, checkpoint_every=100)
    learned = methods.learn(pipe, action, "pplus", cfg, out=tmp_path / "pplus.safetensors", progress=False)
    states, _ = methods.get_method("pplus").apply(pipe, learned).encode(["a panda <A> in a park"])
    procs = [p for p in pipe.unet.attn_processors.values() if isinstance(p, LayerwiseAttnProcessor)]
    assert len(procs) == 16 and {p.seq_len for p in procs} == {24}
    assert states.shape == (1, 16 * 24, 1024)


def test_rebuild_keeps_every_id_and_appends_new_tokens(full, tmp_path):
    from actionbench.world.vocab import load_trimmed_tokenizer, main, read_trimmed_files, write_trimmed_files

    write_trimmed_files(["panda", "salutes", "park"], tmp_path)
    old = json.loads((tmp_path / "vocab.json").read_text())
    write_trimmed_files(["panda", "kangaroo", "handstand", "park"], tmp_path, keep_ids=True)  # "salutes" dropped
    new = json.loads((tmp_path / "vocab.json").read_text())
    assert all(new[t] == i for t, i in old.items())  # nothing moved, nothing dropped
    assert len(new) > len(old) and sorted(new.values()) == list(range(len(new)))
    tok = trimmed_clip_tokenizer(["panda", "kangaroo", "handstand", "park", "salutes"], tmp_path)  # keep_ids off: fresh
    assert tok.bos_token_id == len(tok) - 2
    write_trimmed_files(["panda", "salutes", "park"], tmp_path)  # fresh again, then grown by the CLI's default
    grown = load_trimmed_tokenizer(tmp_path)
    before = grown.convert_tokens_to_ids(grown.tokenize("a panda salutes in a park"))
    write_trimmed_files(["panda", "salutes", "park", "kangaroo"], tmp_path, keep_ids=True)
    after = load_trimmed_tokenizer(tmp_path)
    assert after.convert_tokens_to_ids(after.tokenize("a panda salutes in a park")) == before
    for w in ("kangaroo", "salutes", "panda"):
        assert after.tokenize(w) == full["!"].tokenize(w)
    assert read_trimmed_files(tmp_path / "nothing") is None
    last = json.loads((tmp_path / "vocab.json").read_text())
    main(["--out", str(tmp_path)])  # the CLI keeps ids by default
    rebuilt = json.loads((tmp_path / "vocab.json").read_text())
    assert all(rebuilt[t] == i for t, i in last.items()) and len(rebuilt) > len(last)
