"""MagCache's calibration job: the magnitude ratios of one model at one step count.

MagCache's skip rule reads, per step, the ratio of the norms of consecutive residuals of the
whole block stack. diffusers measures them itself in calibration mode (`MagCacheConfig(
calibrate=True)`: nothing is skipped, each step's ratio is recorded); edgediff runs that mode for
one real generation at the plan's step count and keeps the ratios, so they go into the plan
(`mag_cache.mag_ratios`) instead of being printed. Ratios are tied to the model, the step count
and the scheduler: a plan with other steps needs a new calibration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from evaluators.plan import Plan, PlanError
from evaluators.runtime.clock import RunState
from evaluators.runtime.hooks import Installation
from evaluators.runtime.library_cache import LibraryCache, TimestepTracker, library_config


def calibrate_subject(subject: Any, plan: Plan, seeds: Sequence[int],
                      conditions: Sequence[Any]) -> tuple[float, ...]:
    """The ratios of a subject's denoiser at `plan`'s step count: one generation of these seeds
    and conditions with `plan` (the uncompressed plan) applied, under MagCache calibration."""
    return calibrate_mag_ratios(subject.denoiser,
                                lambda: subject.generate_batch(plan, seeds, conditions),
                                plan.num_steps, clock=False)


def calibrate_mag_ratios(model: torch.nn.Module, generate: Callable[[], object],
                         num_steps: int, clock: bool = True) -> tuple[float, ...]:
    """Run `generate()` (one generation of `num_steps` denoiser steps on `model`) under
    diffusers' MagCache calibration and return its ratio for each step (step 0: 1.0).
    `clock=False` where `generate` applies a plan itself (its step clock is the one that runs;
    MagCache counts its steps on its own)."""
    from evaluators.runtime.clock import StepClockHook
    from evaluators.techniques._library import CACHE_FAMILIES

    cls = type(model).__name__
    if cls not in CACHE_FAMILIES:
        raise PlanError(f"MagCache calibration runs on {', '.join(CACHE_FAMILIES)}, not {cls}")
    # One step more than the generation, so diffusers does not clear the ratios at its end.
    config = library_config("mag_cache", calibrate=True, num_inference_steps=num_steps + 1)
    state = RunState(num_steps)
    installation = Installation()
    cache = LibraryCache(model, "mag_cache", config, state, TimestepTracker(1.0))
    seen: list[float] = []  # kept after every call: a pipeline resets the hooks when it ends
    cache.hook.after = lambda: seen.__setitem__(slice(None), _recorded(cache))
    installation.add_undo(cache.remove)
    if clock:
        installation.add_hook(model, StepClockHook(state, model.forward), "edgediff.clock")
    try:
        with torch.no_grad():
            generate()
        ratios = _recorded(cache) or seen
    finally:
        installation.remove()
    if len(ratios) != num_steps:
        raise PlanError(f"MagCache calibration recorded {len(ratios)} steps, expected "
                        f"{num_steps}: run one generation of {num_steps} steps")
    return tuple(float(r) for r in ratios)


def _recorded(cache: LibraryCache) -> list[float]:
    """The ratios of the conditional context (the pipeline's "cond", or edgediff's own)."""
    for manager in cache.managers:
        states = manager._state_cache
        for name in ("cond", "edgediff", "inference", *states):
            if name in states and states[name].calibration_ratios:
                return list(states[name].calibration_ratios)
    return []
