"""How far each learned identifier moves the world model's images from the action-free prompt.

    python scripts/world_token_grip.py handstand,meditate,salute sd,textual-inversion,adi [results/world-demo]

For every action and method, the demo's 36 prompts ("a panda <A> in a park", 4 per subject
kind, seeds 0-35) are drawn with the learned file from an ``actionbench demo`` folder and
compared, pixel by pixel (0-255), with the same prompts without the action ("a panda in a
park") and the same seeds. Prints the mean absolute difference: how much grip the token has.
"""

import sys

import numpy as np
import torch

import methods
from actionbench.models import load_pipeline
from evaluate.demo import subject_templates, world_subjects


def as_array(images) -> np.ndarray:
    return np.stack([np.asarray(i, dtype=np.float32) for i in images])


def main(actions: list[str], names: list[str], demo_dir: str = "results/world-demo", steps: int = 25, guidance: float = 7.5):
    torch.set_num_threads(1)
    templates = [t for si, (_, phrase) in enumerate(world_subjects()) for t in subject_templates(phrase, 4, si)]
    pipe = load_pipeline("world-v2b")
    free = [t.replace(" {}", "") for t in templates]
    generators = [torch.Generator().manual_seed(i) for i in range(len(free))]
    base = as_array(pipe(free, num_inference_steps=steps, guidance_scale=guidance, generator=generators, height=64, width=64).images)
    for action in actions:
        row = []
        for name in names:
            learned = methods.LearnedAction.load(f"{demo_dir}/learned/{action}-{name}.safetensors")
            images = methods.generate(load_pipeline("world-v2b"), learned, templates, seed=0, steps=steps, guidance=guidance,
                                      batch=len(templates))
            row.append(f"{name} {np.abs(as_array(images) - base).mean():.1f}")
        print(f"{action}: mean |difference| to the action-free prompt: " + ", ".join(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1].split(","), sys.argv[2].split(","), *sys.argv[3:4])
