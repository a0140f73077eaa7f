"""The v3 autoencoder (issue #23): v2b's VAE fine-tuned on v3 renders, and the v3 judge through it.

Exactly what made ``results/world-v3/vae.safetensors`` (2-core CPU, one thread, beside one
other 1-thread job): the ``vae`` stage of ``actionbench world train`` (L1 + MSE + tiny KL,
batch 16, lr 1e-3 with 50 warm-up steps and a cosine decay) run twice, 250 steps from the
shipped v2b VAE (110 CPU-s) and then 1,500 steps from those weights (631 s), each its own
cosine cycle; then the v3 judge on 480 fresh v3 renders and on their reconstructions
(``fidelity.judge_check``, as the world model's fidelity report measures it).

    python scripts/world_v3_vae.py                  # both stages (skips a stage whose output exists), then the measure
    python scripts/world_v3_vae.py --measure-only   # the measure on results/world-v3/vae.safetensors
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from actionbench.models import WORLD_MODEL_DIR, build_pipeline
from actionbench.world import judge as J
from actionbench.world.fidelity import judge_check
from actionbench.world.train import TrainConfig, _spec, _vae_weights, train_vae

STAGES = (("stage1", 250, None), ("stage2", 1500, "stage1"))


def train(work: Path) -> Path:
    """Run the two stages in ``work`` (resumable by stage); return the final weights."""
    for name, steps, init in STAGES:
        out = work / name
        out.mkdir(parents=True, exist_ok=True)
        if init is None:
            init_dir = WORLD_MODEL_DIR / "vae"
        else:  # the previous stage's weights as a diffusers-style folder
            init_dir = work / f"{init}-vae"
            init_dir.mkdir(exist_ok=True)
            shutil.copy(work / init / "vae.safetensors", init_dir / "diffusion_pytorch_model.safetensors")
        cfg = TrainConfig(out=str(out), world="v3", init_vae=str(init_dir), vae_steps=steps, vae_lr=1e-3, threads=1)
        (out / "config.json").write_text(json.dumps(cfg.__dict__, indent=1))
        pipe = build_pipeline(_spec(cfg), seed=0)
        t = time.process_time()
        train_vae(pipe, cfg, out)
        print(f"{name}: {steps} steps, {time.process_time() - t:.0f} CPU-s")
    return work / STAGES[-1][0] / "vae.safetensors"


def measure(weights: dict[str, Path | None], n: int = 480) -> dict:
    """The v3 judge's accuracy per head on ``n`` fresh v3 renders and through each autoencoder
    (:func:`actionbench.world.fidelity.judge_check`)."""
    pipe = build_pipeline(_spec(TrainConfig()), seed=0)
    judge = J.load_judge(J.JUDGE_V3_DIR)
    report = {"n": n}
    for name, path in weights.items():
        w = _vae_weights(WORLD_MODEL_DIR / "vae") if path is None else load_file(str(path))
        pipe.vae.load_state_dict({k: v.float() for k, v in w.items()})
        pipe.vae.eval()
        check = judge_check(pipe, judge, n=n, world="v3")
        report["renders"] = {h: round(100 * a, 1) for h, a in check["renders"].items()}
        report[name] = {"l1": round(check["reconstruction_l1"], 4),
                        **{h: round(100 * a, 1) for h, a in check["vae_reconstructions"].items()}}
    return report


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="scratch/world-v3-vae")
    ap.add_argument("--out", default="results/world-v3")
    ap.add_argument("--measure-only", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.measure_only:
        shutil.copy(train(Path(args.work)), out / "vae.safetensors")
    report = measure({"through_v2b_vae": None, "through_v3_vae": out / "vae.safetensors"})
    (out / "vae_fidelity.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
