"""Latency per image, timed on the evaluation's device: repeats of one warm batch.

The pass that makes a plan's images is its warm-up (the plan's hooks, caches and kernels have all
run by then); `spec.latency_repeats` further generations of one batch are timed, each between two
device synchronisations (CUDA runs asynchronously: without them the clock would stop before the
GPU does). The latency is the median per image over the repeats, robust to one slow repeat; the
spread is kept beside it (`LatencyStats.to_dict`, stored in the evaluation's `extra["latency"]`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class LatencyStats:
    """Seconds per image over repeated timed generations.

    Attributes:
        median_s: the median over the repeats (the evaluation's `latency_per_image_s`).
        iqr_s: the interquartile range (75th - 25th percentile) of the repeats.
        std_s: their standard deviation (0 for one repeat).
        min_s, max_s: the fastest and slowest repeat.
        repeats: generations timed.
        images_per_call: images of each timed generation (one batch).
        pass_s: per image in the pass that made the images (untimed warm-up included there).
    """

    median_s: float
    iqr_s: float
    std_s: float
    min_s: float
    max_s: float
    repeats: int
    images_per_call: int
    pass_s: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, run: Callable[[], object]) -> float:
    """Seconds `run()` takes on `device`, synchronised before and after."""
    sync(device)
    began = time.perf_counter()
    run()
    sync(device)
    return time.perf_counter() - began


def measure_latency(device: torch.device, run: Callable[[], object], images: int, repeats: int,
                    pass_s: float) -> LatencyStats:
    """Time `repeats` calls of `run` (each generating `images` images), per image."""
    samples = [timed(device, run) / images for _ in range(repeats)]
    quartiles = statistics.quantiles(samples, n=4, method="inclusive") if repeats > 1 else [samples[0]] * 3
    return LatencyStats(
        median_s=statistics.median(samples), iqr_s=quartiles[2] - quartiles[0],
        std_s=statistics.stdev(samples) if repeats > 1 else 0.0, min_s=min(samples),
        max_s=max(samples), repeats=repeats, images_per_call=images, pass_s=pass_s)
