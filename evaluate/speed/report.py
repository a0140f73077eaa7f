"""The speed benchmark's report: the machine, the table printed on stdout, counts merged from an earlier run."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def machine() -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "cpu": platform.processor() or platform.machine()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


# "Fits a card": the estimated peak (frozen weights + saved activations + the trained tensors
# with AdamW state) plus a headroom for what the count leaves out (the CUDA context, kernel
# workspaces, transient gradient buffers, allocator fragmentation) is at most the card's memory.
CARD_GB = 24.0
HEADROOM_GB = 2.0
FLOOR_OF = {"ti": "floor-ti", "floor-ti": "floor-ti"}  # the floor at a step's own batch; ADI's is "floor" (batch 3)


def estimated_peak_gb(row: dict) -> float | None:
    if "saved_gb" not in row:
        return None
    return row["weights_gb"] + row["saved_gb"] + row.get("optimizer_gb", 0.0)


def fits_card(row: dict, card_gb: float = CARD_GB, headroom_gb: float = HEADROOM_GB) -> bool | None:
    """Whether the step fits a ``card_gb`` card: the CUDA peak if measured, else the estimate, plus the headroom."""
    peak = row.get("peak_mem_gb", estimated_peak_gb(row))
    return None if peak is None else peak + headroom_gb <= card_gb


def annotate(rows: list[dict]) -> None:
    """Add to each row its estimated peak, whether it fits a 24 GB card, and its GFLOP over its floor's."""
    by = {(r["setting"], r["variant"]): r for r in rows}
    for r in rows:
        est = estimated_peak_gb(r)
        if est is not None:
            r["est_peak_gb"] = est
        fits = fits_card(r)
        if fits is not None:
            r[f"fits_{CARD_GB:g}gb"] = fits
        floor = by.get((r["setting"], FLOOR_OF.get(r["variant"], "floor")), {})
        if r.get("gflop") and floor.get("gflop"):
            r["gflop_x_floor"] = r["gflop"] / floor["gflop"]


def fits_summary(rows: list[dict], card_gb: float = CARD_GB) -> str | None:
    """One line: per step, the settings that fit the card."""
    key = f"fits_{card_gb:g}gb"
    steps: dict = {}
    for r in rows:
        if key in r:
            steps.setdefault(r["variant"], []).append(f"{r['setting']} {'yes' if r[key] else 'no'}")
    if not steps:
        return None
    return (f"fits a {card_gb:g} GB card (peak + {HEADROOM_GB:g} GB headroom): "
            + "; ".join(f"{v}: {', '.join(s)}" for v, s in steps.items()))


def _cell(x, width: int, fmt: str) -> str:
    return format(x, fmt).rjust(width) if x is not None else "-".rjust(width)


def format_table(result: dict) -> str:
    rows = result["rows"]
    lines = [f"actionbench speed: {result['model']} at {result['resolution']}px on {result['device']} ({result['machine'].get('gpu') or result['machine']['cpu']})"]
    f = result.get("floor_counts")
    if f:
        layers = f.get("cross_attention_layers", 16)
        te = f.get("text_encoder_layer_variants_gflop", f.get("text_encoder_16_variants_gflop"))
        lines.append(
            f"reference counts: UNet forward b1 {f['unet_forward_b1_gflop']:.4g} GFLOP ({f['unet_forward_b1_gflop_without_attention']:.4g} without "
            f"SDPA), text encoder(s) x{layers} variants {te:.4g} GFLOP"
        )
    head = (f"{'setting':11s} {'step':11s} {'ms/step':>9s} {'x floor':>8s} {'x naive':>8s} {'GFLOP':>8s} {'TFLOP/s':>8s} "
            f"{'act GB':>7s} {'peak GB':>8s} {f'{CARD_GB:g}GB?':>6s}")
    lines += [head, "-" * len(head)]
    by = {(r["setting"], r["variant"]): r for r in rows}
    for r in rows:
        ms = r.get("median_s")
        floor = by.get((r["setting"], FLOOR_OF.get(r["variant"], "floor")), {}).get("median_s")
        naive = by.get((r["setting"], "adi-naive"), {}).get("median_s")
        tflops = r["gflop"] / 1e3 / ms if ms and "gflop" in r else None
        peak = r.get("peak_mem_gb")
        est = estimated_peak_gb(r)
        fits = fits_card(r)
        lines.append(" ".join([
            f"{r['setting']:11s} {r['variant']:11s}",
            _cell(ms and ms * 1e3, 9, ".1f"), _cell(ms and floor and ms / floor, 8, ".2f"),
            _cell(ms and naive and ms / naive, 8, ".2f"), _cell(r.get("gflop"), 8, ".4g"), _cell(tflops, 8, ".3g"),
            _cell(r.get("saved_gb"), 7, ".3g"), _cell(peak, 8, ".3g") if peak is not None else _cell(est, 7, ".3g") + "*",
            ("-" if fits is None else "yes" if fits else "no").rjust(6),
        ]))
    lines.append("act GB: tensors saved for the backward (meta-device count); peak GB: CUDA peak, or * weights + act GB + "
                 f"trained tensors with AdamW state (estimate); {CARD_GB:g}GB?: peak + {HEADROOM_GB:g} GB headroom <= {CARD_GB:g} GB; "
                 "x floor: against floor-ti for ti, floor (batch 3) otherwise")
    summary = fits_summary(rows)
    if summary:
        lines.append(summary)
    for e in result.get("end_to_end", []):
        if "error" in e:
            lines.append(f"end to end ({e['setting']}): failed ({e['error']})")
            continue
        p, s = e["paper"], e["suite"]
        lines.append(
            f"end to end ({e['setting']}, estimated from step times): paper {p['total_s'] / 60:.1f} min "
            f"(action-different {p['action_different_s'] / 60:.1f} + ADI {(p['adi_s'] or 0) / 60:.1f}), suite {s['total_s'] / 60:.1f} min "
            f"(action-different {s['action_different_s'] / 60:.1f} + ADI {(s['adi_s'] or 0) / 60:.1f}); {p['total_s'] / s['total_s']:.1f}x faster"
        )
    return "\n".join(lines)



def merge_counts(result: dict, counted: dict) -> None:
    """Take FLOP / activation counts (and reference counts) from an earlier count-only run of the same model."""
    keys = ("batch", "gflop", "gflop_without_attention", "saved_gb", "weights_gb", "optimizer_gb")
    by = {(r["setting"], r["variant"]): r for r in counted.get("rows", [])}
    for row in result["rows"]:
        # fp16 and bf16 count alike (2-byte weights and activations, the same operations)
        same = row["setting"].replace("fp16", "bf16")
        found = by.get((row["setting"], row["variant"])) or by.get((same, row["variant"]), {})
        row.update({k: found[k] for k in keys if k in found})
    if counted.get("model") == result["model"]:
        result["floor_counts"] = result.get("floor_counts") or counted.get("floor_counts")

