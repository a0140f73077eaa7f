"""The ``vqa`` judge on tiny random vision-language models built here (no download).

A tiny LLaVA (CLIP vision tower + Llama, hidden size 32) with a word-level tokenizer
whose vocabulary holds "Yes", "yes", "No", "no" and a chat template is saved to a folder
and loaded back through the judge's public path (``make_judge("vqa", ..., model=DIR)``).
Its answers are random, so the tests check the reading of them, not their sense: P(yes)
equals a softmax computed here from the model's own logits, verdicts follow P(yes) and the
threshold, batches change nothing, and failures are "cannot tell", never "no".

Qwen2-VL: transformers 5.x builds its processor with a video processor that needs
torchvision, which this project's CPU install leaves out; here the judge must say so, and
where torchvision is installed the same tiny Qwen2-VL folder is judged for real.
"""

from __future__ import annotations

import io
import json

import pytest
import torch
from PIL import Image

from actionbench.errors import ActionBenchError
from evaluate.judges import Item, JudgeContext, make_judge
from evaluate.judges.vqa import ANSWER_HINT, action_question, subject_question

WORDS = ("Yes yes No no Is Does this a an the it true that panda dog old man Batman Barack Obama perform handstand "
         "salute sit have hands together in prayer Answer or ? . : user assistant").split()
TEMPLATE = ("{% for message in messages %}{{ message['role'] }}: {% for c in message['content'] %}"
            "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }}{% endif %}{% endfor %}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant: {% endif %}")
ITEMS = [Item("i0", "handstand", "A panda"), Item("i1", "salute", "A dog"), Item("i2", "sit", "Batman"),
         Item("i3", "pray", "An old man"), Item("i4", "handstand", "Barack Obama")]


def word_tokenizer(words, special):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(list(special) + ["[UNK]"] + list(words))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    return vocab, tok, PreTrainedTokenizerFast


def build_llava(folder, words=WORDS, seed=0):
    """A ~50k-parameter random LLaVA, its tokenizer and processor, saved to ``folder``."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    vocab, tok, Fast = word_tokenizer(words, ["<pad>", "<s>", "</s>", "<image>"])
    tokenizer = Fast(tokenizer_object=tok, unk_token="[UNK]", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                     extra_special_tokens={"image_token": "<image>"})
    images = CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default",
                               chat_template=TEMPLATE, num_additional_image_tokens=1)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=28, patch_size=14),
        text_config=LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                                pad_token_id=0, bos_token_id=1, eos_token_id=2),
        image_token_index=vocab["<image>"], image_seq_length=4, vision_feature_layer=-1)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():  # spread the answers out (the default init puts every P(yes) near 0.5)
        model.lm_head.weight.normal_(0.0, 1.0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return vocab


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llava")
    return folder, build_llava(folder)


def images(n=5):
    """Small images of different sizes and content (the processor resizes them)."""
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(n):
        size = (20 + 7 * i, 36 - 3 * i)
        px = (torch.rand(size[1], size[0], 3, generator=g) * 255).to(torch.uint8).numpy()
        out.append(Image.fromarray(px))
    return out


def judge_of(folder, **options):
    return make_judge("vqa", JudgeContext({}, tuple(i.subject for i in ITEMS)), model=str(folder), **options)


def notes(verdicts):
    return [json.loads(v.note) for v in verdicts]


def test_questions_name_the_subject_and_the_action(llava):
    assert action_question("A panda", "performs a handstand") == "Does the panda perform a handstand?"
    assert action_question("Batman", "salutes") == "Does Batman salute?"
    assert action_question("An old man", "has hands together in prayer") == "Does the old man have hands together in prayer?"
    assert action_question("A dog", "raises both arms for cheering") == "Does the dog raise both arms for cheering?"
    assert action_question("A dog", "doing a handstand") == "Is the dog doing a handstand?"
    assert action_question("A dog", "upside down") == "Is it true that the dog upside down?"  # no verb: asked as written
    assert subject_question("A panda") == "Is this a panda?"
    assert subject_question("An old man") == "Is this an old man?"
    assert subject_question("Barack Obama") == "Is this Barack Obama?"
    judge = judge_of(llava[0])
    qs = judge.questions(ITEMS[0])  # the phrase comes from the catalog when the benchmark has none
    assert qs == {"action": "Does the panda perform a handstand?", "subject": "Is this a panda?"}
    prompt = judge.vqa.prompt(qs["action"])
    assert "<image>" in prompt and "the panda perform a handstand?" + ANSWER_HINT in prompt and prompt.endswith("assistant: ")


def test_verdicts_follow_the_probabilities_and_the_threshold(llava):
    ims = images()
    verdicts = judge_of(llava[0]).judge(ims, ITEMS)
    got = notes(verdicts)
    ps = []
    for v, n in zip(verdicts, got):
        assert v.judge == "vqa" and v.image_id in {i.image_id for i in ITEMS}
        for kind, ok in (("action", v.action_ok), ("subject", v.subject_ok)):
            p = n[f"p_{kind}_yes"]
            assert 0.0 <= p <= 1.0 and 0.0 < n[f"mass_{kind}"] <= 1.0
            assert ok is (p >= 0.5)
            assert n[f"answer_{kind}"] in ("yes", "no")
            ps.append(p)
        assert v.score == n["p_action_yes"]
    ps = sorted(set(ps))
    assert len(ps) >= 6  # the answers differ between images and questions
    cut = (ps[len(ps) // 2 - 1] + ps[len(ps) // 2]) / 2  # a threshold between two observed values
    said = []
    for v, n in zip(judge_of(llava[0], threshold=str(cut)).judge(ims, ITEMS), got):  # a string, as --option gives it
        assert v.action_ok is (n["p_action_yes"] >= cut) and v.subject_ok is (n["p_subject_yes"] >= cut)
        said += [v.action_ok, v.subject_ok]
    assert True in said and False in said


def test_probabilities_equal_a_softmax_computed_here(llava):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from actionbench.catalog import action_phrase

    folder, vocab = llava
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    yes, no = [vocab["Yes"], vocab["yes"]], [vocab["No"], vocab["no"]]
    ims = images()
    got = notes(judge_of(folder).judge(ims, ITEMS))
    for im, item, n in zip(ims, ITEMS, got):
        for kind, question in (("action", action_question(item.subject, action_phrase(item.action))),
                               ("subject", subject_question(item.subject))):
            text = f"user: <image> {question}{ANSWER_HINT}\nassistant: "
            with torch.no_grad():
                logits = model(**processor(text=[text], images=[im], return_tensors="pt")).logits[0, -1]
            z = logits[yes + no].double().exp()
            assert n[f"p_{kind}_yes"] == pytest.approx(float(z[:2].sum() / z.sum()), abs=2e-6)
            assert n[f"mass_{kind}"] == pytest.approx(float(logits.softmax(-1)[yes + no].sum()), abs=1e-4)
            top = (yes + no)[int(logits[yes + no].argmax())]
            assert n[f"answer_{kind}"] == ("yes" if top in yes else "no")


def test_batches_change_nothing(llava):
    ims = images()
    one = judge_of(llava[0], batch_size=1).judge(ims, ITEMS)
    three = judge_of(llava[0], batch_size="3").judge(ims, ITEMS)  # odd: batches mix questions of different lengths
    for a, b in zip(one, three):
        assert (a.action_ok, a.subject_ok) == (b.action_ok, b.subject_ok)
        na, nb = json.loads(a.note), json.loads(b.note)
        assert na.keys() == nb.keys()
        for key in na:
            assert na[key] == (pytest.approx(nb[key], abs=1e-5) if isinstance(na[key], float) else nb[key])


def truncated_png(path):
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buf, format="PNG")
    path.write_bytes(buf.getvalue()[:60])
    return Image.open(path)  # opens lazily: the damage shows when its pixels are read


def test_a_broken_image_is_cannot_tell_and_spares_the_others(llava, tmp_path):
    ims = images()
    clean = judge_of(llava[0], batch_size=4).judge(ims, ITEMS)
    broken = list(ims)
    broken[1], broken[3] = truncated_png(tmp_path / "cut.png"), None
    verdicts = judge_of(llava[0], batch_size=4).judge(broken, ITEMS)
    for i in (1, 3):
        v, n = verdicts[i], json.loads(verdicts[i].note)
        assert v.action_ok is None and v.subject_ok is None and v.score is None
        assert n["error_action"].startswith("image: ") and n["error_subject"].startswith("image: ")
    for i in (0, 2, 4):
        assert (verdicts[i].action_ok, verdicts[i].subject_ok) == (clean[i].action_ok, clean[i].subject_ok)
        assert verdicts[i].score == pytest.approx(clean[i].score, abs=1e-5)


def test_a_failing_model_is_cannot_tell_not_false(llava, monkeypatch):
    judge = judge_of(llava[0])

    def boom(*args, **kwargs):
        raise RuntimeError("out of memory (forced)")

    monkeypatch.setattr(judge.vqa.model, "forward", boom)
    for v in judge.judge(images(2), ITEMS[:2]):
        n = json.loads(v.note)
        assert v.action_ok is None and v.subject_ok is None
        assert "RuntimeError: out of memory (forced)" in n["error_action"] and "RuntimeError" in n["error_subject"]


def test_an_action_without_a_phrase_is_cannot_tell_for_the_action_only(llava):
    v = judge_of(llava[0]).judge(images(1), [Item("u", "wave-unnamed", "A dog")])[0]
    n = json.loads(v.note)
    assert v.action_ok is None and v.subject_ok is not None and v.score is None
    assert "no phrase for action 'wave-unnamed'" in n["error_action"] and "p_subject_yes" in n


def test_a_tokenizer_without_yes_and_no_is_cannot_tell(tmp_path):
    build_llava(tmp_path / "m", words=[w for w in WORDS if w.lower() not in ("yes", "no")])
    for v in judge_of(tmp_path / "m").judge(images(2), ITEMS[:2]):
        assert v.action_ok is None and v.subject_ok is None
        assert "no single-token yes/no" in json.loads(v.note)["error_subject"]


def test_a_missing_model_is_a_clear_error(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ActionBenchError, match="no such model folder") as err:
        judge_of(missing)
    assert str(missing) in str(err.value) and "huggingface-cli download Qwen/Qwen2-VL-2B-Instruct" in str(err.value)
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ActionBenchError, match="is a file"):
        judge_of(tmp_path / "weights.bin")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ActionBenchError, match=r"could not load model .*empty"):
        judge_of(tmp_path / "empty")


def test_bad_options_are_clear_errors(llava):
    with pytest.raises(ActionBenchError, match="threshold must be in"):
        judge_of(llava[0], threshold=1.5)
    with pytest.raises(ActionBenchError, match="batch_size must be a whole number"):
        judge_of(llava[0], batch_size="many")
    with pytest.raises(ActionBenchError, match="batch_size must be in"):
        judge_of(llava[0], batch_size=0)
    with pytest.raises(ActionBenchError, match="unknown option.*treshold"):
        judge_of(llava[0], treshold="0.7")
    with pytest.raises(ActionBenchError, match="dtype 'int8'"):
        judge_of(llava[0], dtype="int8")


def test_cli_flag_and_run_config_reach_the_judge(llava, tmp_path):
    """``--judge-model`` sets the vqa judge's model; a run config's judge_options judge a run folder."""
    import argparse

    import yaml

    from evaluate.cli import add_parsers, apply_judge_options
    from evaluate.config import RunConfig
    from evaluate.manifest import append_jsonl, read_verdicts
    from evaluate.runner import judge_images

    folder = str(llava[0])
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers())
    config = RunConfig.from_dict({"methods": ["sd"]})
    apply_judge_options(config, parser.parse_args(["judge", "RUN", "--judges", "vqa", "--judge-model", folder,
                                                   "--option", "vqa.threshold=0.6"]))
    assert config.judge_options == {"vqa": {"model": folder, "threshold": "0.6"}}
    with pytest.raises(ActionBenchError, match="add vqa to --judges"):
        apply_judge_options(config, parser.parse_args(["judge", "RUN", "--judges", "pose", "--judge-model", folder]))

    run = tmp_path / "run"
    (run / "images").mkdir(parents=True)
    (run / "run.yaml").write_text(yaml.safe_dump({"methods": ["sd"], "judges": ["vqa"], "subjects": ["A panda", "A dog"],
                                                  "judge_options": {"vqa": {"model": folder, "batch_size": 2}}}))
    for k, (im, item) in enumerate(zip(images(3), ITEMS[:3])):
        im.save(run / "images" / f"{k}.png")
        append_jsonl(run / "manifest" / "part-000.jsonl", {
            "image_id": f"sd/{item.action}/{k}", "method": "sd", "method_name": "sd", "action": item.action, "subject": item.subject,
            "index": k, "seed": k, "path": f"images/{k}.png", "prompt": "", "time_s": 0.0})
    config = RunConfig.from_yaml(run / "run.yaml", out=str(run))
    assert judge_images(run, config, ["vqa"], {}, ["A panda", "A dog"], strict=True) == {"vqa": 3}
    v = read_verdicts(run)
    assert len(v) == 3 and set(v.judge) == {"vqa"} and v.subject_ok.notna().all()
    assert all(0.0 <= json.loads(n)["p_subject_yes"] <= 1.0 for n in v.note)


def build_qwen2_vl(folder):
    """A tiny random Qwen2-VL folder: model, tokenizer (with the chat template), image processor, processor class."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    vocab, tok, Fast = word_tokenizer(WORDS, special)
    template = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% for c in message['content'] %}"
                "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
                "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    tokenizer = Fast(tokenizer_object=tok, unk_token="[UNK]", pad_token="<|endoftext|>", eos_token="<|im_end|>",
                     additional_special_tokens=special[1:], chat_template=template)
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, max_position_embeddings=512, pad_token_id=0,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 4]}),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"])
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    Qwen2VLImageProcessorPil(size={"shortest_edge": 28 * 28, "longest_edge": 56 * 56}).save_pretrained(folder)
    (folder / "processor_config.json").write_text(json.dumps({"processor_class": "Qwen2VLProcessor"}))


def test_qwen2_vl(tmp_path):
    """Judged for real where torchvision is installed (not on this project's CPU install: never run here);
    without it, a one-line error that names torchvision."""
    build_qwen2_vl(tmp_path)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(ActionBenchError, match="torchvision"):
            judge_of(tmp_path)
        return
    ims = images(3)
    one, three = judge_of(tmp_path, batch_size=1).judge(ims, ITEMS[:3]), judge_of(tmp_path, batch_size=3).judge(ims, ITEMS[:3])
    for a, b in zip(one, three):
        na, nb = json.loads(a.note), json.loads(b.note)
        assert 0.0 <= na["p_subject_yes"] <= 1.0 and a.subject_ok is (na["p_subject_yes"] >= 0.5)
        assert na["p_action_yes"] == pytest.approx(nb["p_action_yes"], abs=1e-4)
