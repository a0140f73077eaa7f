"""Timing steps (median / min seconds, CUDA peak memory) and the per-setting measurement loop."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from evaluate.speed.counts import count_step, frozen_weights, optimizer_gb, weights_gb
from evaluate.speed.models import Setting, _prepare
from evaluate.speed.steps import make_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(step: Callable[[], None], device: torch.device, warmup: int = 1, iters: int = 3) -> dict:
    """Median / min seconds per step, and (CUDA) the peak memory allocated during the steps."""
    for _ in range(warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    out = {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}
    if device.type == "cuda":
        out["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out



def measure(arch: dict, device: str, settings: list[Setting], variants: list[str], iters: int, warmup: int,
            count: bool = True, log=print, on_rows=None) -> list[dict]:
    """Time (and count on the meta device) every variant in every setting -> rows."""
    rows = []
    dev = torch.device(device)
    for setting in settings:
        counts = {}
        if count:
            meta = _prepare(arch, "meta", setting)
            for v in variants:
                step = make_step(meta, v)
                counts[v] = {"batch": step.batch, **count_step(step, frozen_weights(meta)), "weights_gb": weights_gb(meta),
                             "optimizer_gb": optimizer_gb(step.trainable)}
            del meta
        if iters == 0:
            rows += [{"variant": v, "setting": setting.label, **counts.get(v, {})} for v in variants]
            continue
        pipe = _prepare(arch, device, setting)
        steps = {v: make_step(pipe, v) for v in variants}
        for v in variants:  # warm every variant before timing any: same caches for all
            for _ in range(warmup):
                steps[v]()
        for v in variants:
            r = time_step(steps[v], dev, warmup=0, iters=iters)
            rows.append({"variant": v, "setting": setting.label, **counts.get(v, {}), **r})
            log(f"  {setting.label:10s} {v:11s} {r['median_s'] * 1e3:10.1f} ms")
        del pipe, steps
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        if on_rows is not None:
            on_rows(rows)  # e.g. save what is measured so far
    return rows

