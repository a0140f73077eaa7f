"""Learned-action files: safetensors + JSON metadata, checked against the pipeline."""

import json

import pytest
import torch
from conftest import small_action, tiny_pipe
from safetensors import safe_open

import methods
from actionbench.bench import load_action
from actionbench.errors import ActionBenchError


@pytest.fixture
def learned_file(tmp_path):
    out = tmp_path / "ti.safetensors"
    cfg = methods.get_method("textual-inversion").Config(steps=2, batch_size=1)
    methods.learn(tiny_pipe(), load_action(small_action(tmp_path)), "textual-inversion", cfg, out=out, progress=False)
    return out


def test_file_is_safetensors_with_metadata(learned_file):
    with safe_open(str(learned_file), framework="pt") as f:
        assert list(f.keys()) == ["<A>"]
        meta = json.loads(f.metadata()["actionbench"])
    assert meta["method"] == "textual-inversion" and meta["fill"] == "<A>"
    assert meta["base_model"] == "tiny-sd2-0" and meta["action"] == "handstand"
    assert len(meta["fingerprint"]["cross_attention_layers"]) == 16
    assert meta["config"]["steps"] == 2 and meta["suite_version"]


def test_loads_and_generates_on_the_same_model(learned_file):
    learned = methods.LearnedAction.load(learned_file)
    images = methods.generate(tiny_pipe(), learned, "A panda {}", n=2, steps=2)
    assert len(images) == 2 and images[0].size == (32, 32)


def test_another_model_is_refused_with_what_differs(learned_file):
    learned = methods.LearnedAction.load(learned_file)
    with pytest.raises(ActionBenchError, match="weights differ.*--model tiny-sd2-0"):
        learned.check_compatible(tiny_pipe(seed=1))
    from actionbench.models import PipelineSpec, build_pipeline

    wider = build_pipeline(PipelineSpec(text_width=48))
    with pytest.raises(ActionBenchError, match="token width 32 does not match this model's 48"):
        methods.generate(wider, learned, "A panda {}", n=1, steps=1)


def test_prompt_without_placeholder_is_refused(learned_file):
    with pytest.raises(ActionBenchError, match="must contain '\\{\\}'"):
        methods.generate(tiny_pipe(), methods.LearnedAction.load(learned_file), "A panda", n=1, steps=1)


def test_not_a_learned_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(ActionBenchError, match="not a safetensors file"):
        methods.LearnedAction.load(bad)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ActionBenchError, match="without actionbench metadata"):
        methods.LearnedAction.load(tmp_path / "plain.safetensors")
    with pytest.raises(ActionBenchError, match="not found"):
        methods.LearnedAction.load(tmp_path / "none.safetensors")


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path, learned_file):
    learned = methods.LearnedAction.load(learned_file)
    out = learned.save(tmp_path / "copy.safetensors")
    assert out.exists() and not list(tmp_path.glob("*.tmp"))
    assert torch.equal(methods.LearnedAction.load(out).tensors["<A>"], learned.tensors["<A>"])


def test_our_evaluate_package_is_the_one_imported():
    import evaluate

    assert evaluate.__file__.startswith(str(__import__("pathlib").Path(__file__).resolve().parents[1]))
