"""``actionbench speed``: how long one training step takes, against its floor.

Builds a Stable Diffusion architecture from its config with random weights (nothing is
downloaded: ``sd21-base``, ``sd15`` and ``sdxl-base`` (registry name ``sdxl``) are the
public configs kept in ``evaluate/configs/``; ``tiny`` / ``tiny-sdxl`` are the tests'
topologies, ``mid`` a small one that fits a 2-core CPU; any JSON file of the same layout
works) and times, per training step, with peak memory:

- ``adi-naive``: the paper's ADI step as written: three separate passes (anchor,
  context-different, action-different), each encoding the L prompt variants one by one;
- ``adi-3pass``: ADI's reference (``ADI.triple_gradients_naive``): three passes, the L
  variants encoded as one batch;
- ``adi-copies``: one batched pass with a per-sample copy of V for each of the 3 samples
  (the text encoder runs over 3*L variants);
- ``adi``: the suite's step (``ADI.triple_gradients``): the L variants encoded once, one
  batch-3 UNet pass, one batched vector-Jacobian product back through the text encoder;
- ``ti``: a Textual Inversion step (batch 2, one token);
- ``floor``: a plain batch-3 UNet forward and input-gradient backward, nothing else (ADI's floor);
- ``floor-ti``: the same at Textual Inversion's batch (2), TI's floor.

On SDXL the identifiers are one (768 + 1280)-wide vector per cross-attention layer (70,
counted from the model), both text encoders run, and the UNet gets the pooled embedding and
time ids.

Each in every requested precision (fp32, bf16, fp16: the frozen weights; identifiers and
optimizer state stay fp32; attention is SDPA throughout), with and without gradient
checkpointing. FLOPs are counted with ``torch.utils.flop_counter``'s formulas and
activation memory from the tensors autograd saves (the frozen weights it holds counted
apart: they are in the weights already), both on the ``meta`` device (no memory, no time),
so full-size figures are available on any machine; with the weights and the trained
tensors' AdamW state they give an estimated peak, and whether it fits a 24 GB card. ``--e2e`` adds
the time to learn one action end to end: the paper's recipe (10 x 2000-step DreamBooth,
generation, 3000 ADI steps) against the suite's default (10 x 200-step LoRA, generation,
3000 fused steps), estimated from measured step times. Results: a table on stdout and
JSON under ``results/``.

The package, by what each module holds:

- ``models``: the architectures (``load_arch``, ``build``) and settings (``Setting``);
- ``steps``: the step variants above on synthetic data (``make_step``, ``synthetic_method``);
- ``counts``: FLOP and saved-activation counts on the meta device (``count_step``, ``floor_counts``);
- ``timing``: timing a step (``time_step``) and the per-setting loop (``measure``);
- ``end_to_end``: the ``--e2e`` estimate (``end_to_end``; the formula, ``estimate``);
- ``report``: the machine, the table, counts merged from an earlier run;
- ``cli``: ``run_speed`` and the ``actionbench speed`` command.
"""

from evaluate.speed.cli import add_parser, cmd_speed, run_speed
from evaluate.speed.counts import Count, count_step, floor_counts, optimizer_gb, weights_gb
from evaluate.speed.end_to_end import PAPER, end_to_end, estimate, suite_recipe
from evaluate.speed.models import (
    CONFIG_DIR,
    PRECISIONS,
    TEMPLATE,
    Setting,
    arch_names,
    build,
    load_arch,
    resolution,
    text_encoder_modules,
)
from evaluate.speed.report import (
    CARD_GB,
    HEADROOM_GB,
    annotate,
    estimated_peak_gb,
    fits_card,
    format_table,
    machine,
    merge_counts,
)
from evaluate.speed.steps import (
    GRADIENTS,
    VARIANTS,
    copies_gradients,
    make_step,
    paper_naive_gradients,
    synthetic_method,
)
from evaluate.speed.timing import measure, time_step

__all__ = [
    "CARD_GB", "HEADROOM_GB", "annotate", "estimated_peak_gb", "fits_card", "optimizer_gb", "text_encoder_modules",
    "CONFIG_DIR", "GRADIENTS", "PAPER", "PRECISIONS", "TEMPLATE", "VARIANTS", "Count", "Setting", "add_parser",
    "arch_names", "build", "cmd_speed", "copies_gradients", "count_step", "end_to_end", "estimate", "floor_counts",
    "format_table", "load_arch", "machine", "make_step", "measure", "merge_counts", "paper_naive_gradients",
    "resolution", "run_speed", "suite_recipe", "synthetic_method", "time_step", "weights_gb",
]
