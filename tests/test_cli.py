"""The CLI end to end, and its one-line errors for bad input (no tracebacks)."""

import subprocess
import sys

import pytest
from conftest import ACTIONBENCH, tiny_pipe
from PIL import Image


def run(*args, cwd=None):
    # the timeout only catches a hang: `learn` took 7 minutes on a 2-core machine at load 7
    return subprocess.run([sys.executable, "-m", "actionbench", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=1800)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("model") / "tiny-sd2"
    tiny_pipe().save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("model") / "tiny-sd1"
    tiny_pipe("sd1").save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def learned(model_dir, tmp_path_factory):
    if not ACTIONBENCH.exists():
        pytest.skip(f"ActionBench not found at {ACTIONBENCH}")
    out = tmp_path_factory.mktemp("learned") / "handstand.safetensors"
    r = run("learn", ACTIONBENCH / "handstand", "--out", out, "--model", model_dir, "--steps", 2,
            "--action-different-steps", 1, "--config", _ad_config(out.parent))
    assert r.returncode == 0, r.stderr
    assert "saved" in r.stdout
    return out


def _ad_config(folder):
    cfg = folder / "fast.yaml"
    cfg.write_text("action_different_sample_steps: 2\naction_different_phrases: [stands]\ncheckpoint_every: 1\n")
    return cfg


def test_learn_then_generate_end_to_end(learned, tmp_path):
    assert learned.exists() and not learned.with_name(learned.name + ".ckpt.safetensors").exists()
    log = learned.with_name(learned.name + ".log.jsonl").read_text().splitlines()
    assert len(log) == 2 and '"loss"' in log[0]
    r = run("generate", learned, "A panda {}", "--out", tmp_path / "out", "--n", 2, "--steps", 2)
    assert r.returncode == 0, r.stderr
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert pngs == ["a_panda_handstand_0000.png", "a_panda_handstand_0001.png", "a_panda_handstand_grid.png"]
    assert Image.open(tmp_path / "out" / "a_panda_handstand_grid.png").size == (4 * 32, 32)


def test_methods_lists_the_registry():
    r = run("methods")
    assert r.returncode == 0 and r.stdout.split()[0] == "adi"
    for name in ("adi", "textual-inversion", "pplus", "sd"):
        assert f"\n{name} " in "\n" + r.stdout


def test_help_documents_the_defaults():
    r = run("learn", "--help")
    assert r.returncode == 0 and "--action-different" in r.stdout and "--resume" in r.stdout


def corrupt_folder(tmp_path):
    d = tmp_path / "act"
    d.mkdir()
    Image.new("RGB", (8, 8)).save(d / "01.png")
    (d / "02.png").write_bytes(b"\x89PNG broken")
    return d


@pytest.mark.parametrize(
    "args, message",
    [
        (lambda t, m: ["learn", t / "missing", "--out", t / "a.safetensors"], "no such folder"),
        (lambda t, m: ["learn", (t / "e").mkdir() or t / "e", "--out", t / "a.safetensors"], "no images found"),
        (lambda t, m: ["learn", corrupt_folder(t), "--template", "a {}", "--out", t / "a.safetensors"], "02.png: unreadable or corrupt"),
        (lambda t, m: ["learn", ACTIONBENCH / "sit", "--template", "a person", "--out", t / "a.safetensors"], "must contain '{}'"),
        (lambda t, m: ["learn", ACTIONBENCH / "sit", "--out", t / "a.safetensors", "--beta", "1.2"], "beta must be strictly between 0 and 1"),
        (lambda t, m: ["learn", ACTIONBENCH / "sit", "--out", t / "a.safetensors", "--model", "no-such-org/no-such-model"], "--model DIR"),
        (lambda t, m: ["learn", ACTIONBENCH / "sit", "--out", t / "a.txt"], ".safetensors"),
        (lambda t, m: ["learn", ACTIONBENCH / "sit", "--out", t / "a.safetensors", "--method", "nope"], "unknown method 'nope'"),
        (lambda t, m: ["learn", ACTIONBENCH / "sit", "--out", t / "a.safetensors", "--lora"], "--lora does not apply to method 'adi'"),
        (lambda t, m: ["learn", ACTIONBENCH / "sit", "--out", t / "a.safetensors", "--method", "textual-inversion", "--no-prior"],
         "--no-prior does not apply to method 'textual-inversion'"),
        (lambda t, m: ["generate", m, "A panda", "--out", t / "o"], "must contain '{}'"),
        (lambda t, m: ["generate", t / "none.safetensors", "A panda {}", "--out", t / "o"], "not found"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, learned, args, message):
    r = run(*args(tmp_path, learned))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("actionbench: error:") and message in err, err


def test_file_for_another_model_is_refused(learned, other_model_dir, tmp_path):
    r = run("generate", learned, "A panda {}", "--out", tmp_path / "o", "--model", other_model_dir, "--steps", 1, "--n", 1)
    assert r.returncode == 2 and "learned on" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_existing_output_is_not_overwritten(learned, model_dir):
    before = learned.read_bytes()
    r = run("learn", ACTIONBENCH / "handstand", "--out", learned, "--model", model_dir, "--steps", 1)
    assert r.returncode == 2 and "--force" in r.stderr
    assert learned.read_bytes() == before


def test_dreambooth_lora_flags_save_only_a_lora(model_dir, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "db.safetensors"
    r = run("learn", ACTIONBENCH / "sit", "--method", "dreambooth", "--lora", "--no-prior", "--steps", 1,
            "--model", model_dir, "--out", out)
    assert r.returncode == 0, r.stderr
    with safe_open(str(out), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith("unet.") and ".lora_" in k for k in keys), keys[:5]
    assert out.stat().st_size < 2**20


def test_auto_dtype_is_bf16_on_a_gpu_and_fp32_on_the_cpu():
    import torch

    from actionbench.cli import _dtype

    assert _dtype("auto", "cuda") == torch.bfloat16 and _dtype("auto", "cuda:1") == torch.bfloat16
    assert _dtype("auto", "cpu") == torch.float32
    assert _dtype("fp16", "cpu") == torch.float16
