"""Shared fixtures: tiny random Stable Diffusion pipelines and the real ActionBench folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parents[1]
ACTIONBENCH = ROOT.parent / "shared" / "ActionBench"

torch.set_num_threads(1)  # faster and steadier than 2 on small models on 2 shared cores
# the same for the CLI / server subprocesses the tests start (they inherit the environment)
os.environ.setdefault("OMP_NUM_THREADS", "1")


def tiny_pipe(flavor: str = "sd2", seed: int = 0):
    """A fresh tiny pipeline (methods change pipelines in place, so never share one)."""
    from actionbench.models import PipelineSpec, build_pipeline

    pipe = build_pipeline(PipelineSpec(flavor=flavor), seed=seed)
    pipe.model_name = f"tiny-{flavor}-{seed}"
    return pipe


@pytest.fixture
def pipe_sd2():
    return tiny_pipe("sd2")


@pytest.fixture
def pipe_sd1():
    return tiny_pipe("sd1")


@pytest.fixture(scope="session")
def actionbench_root() -> Path:
    if not ACTIONBENCH.is_dir():
        pytest.skip(f"ActionBench not found at {ACTIONBENCH}")
    return ACTIONBENCH


def small_action(tmp_path: Path, action: str = "handstand", n: int = 3, with_different: bool = True) -> Path:
    """A small action folder in tmp_path linking n real ActionBench exemplars.

    Action-different images: exemplar NN's folder links the "sit" photos (a stand-in:
    other people, but another action, which is all the shape tests need).
    """
    import json

    src = ACTIONBENCH / action
    if not src.is_dir():
        pytest.skip(f"ActionBench not found at {ACTIONBENCH}")
    dst = tmp_path / action
    dst.mkdir(parents=True)
    templates = json.loads((src / "text.json").read_text())
    keep = {}
    for i in range(1, n + 1):
        name = f"{i:02d}.jpg"
        (dst / name).symlink_to(src / name)
        keep[name] = templates[name]
        if with_different:
            d = dst / "action_different" / f"{i:02d}"
            d.mkdir(parents=True)
            (d / "sits.jpg").symlink_to(ACTIONBENCH / "sit" / name)
            (d / "squats.jpg").symlink_to(ACTIONBENCH / "squat" / name)
    (dst / "text.json").write_text(json.dumps(keep))
    return dst
