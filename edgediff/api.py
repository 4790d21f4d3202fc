"""What a user of an exported plan calls: `edgediff.apply_plan`, `edgediff.count_macs`.

Both take the plan as a `Plan` or the path of a plan file, and a diffusers pipeline or its
denoiser. Only torch, diffusers and `evaluators` are imported (no Ray, Optuna or SQL).
"""

from __future__ import annotations

import os
from typing import Any

from evaluators.cost import MacCount
from evaluators.cost import count_macs as _count_macs
from evaluators.plan import Plan
from evaluators.runtime import AppliedPlan, denoiser_of
from evaluators.runtime import apply_plan as _apply_plan

__all__ = ["apply_plan", "count_macs"]


def apply_plan(target: Any, plan: Plan | str | os.PathLike[str]) -> AppliedPlan:
    """Install `plan` (a Plan, or a plan file's path) on a diffusers pipeline or model; returns
    a handle that `remove()`s it, also a context manager:

        with edgediff.apply_plan(pipe, "plan.json"):
            images = pipe(..., num_inference_steps=plan.num_steps).images
    """
    return _apply_plan(target, _plan(plan))


def count_macs(target: Any, plan: Plan | str | os.PathLike[str] | None = None,
               **options: Any) -> MacCount:
    """The MACs of one generation with `plan` (None: the uncompressed model) on a pipeline or its
    denoiser; `options` as `evaluators.cost.count_macs` (num_images, num_inference_steps, ...).
    A pipeline that reports its generation's `geometry` (DigitsFluxPipeline) is counted at it."""
    if "geometry" not in options and getattr(target, "geometry", None) is not None:
        options["geometry"] = target.geometry
    return _count_macs(denoiser_of(target), None if plan is None else _plan(plan), **options)


def _plan(plan: Any) -> Any:
    """A path read as a plan file; anything else is the runtime's to accept or refuse."""
    return Plan.load(plan) if isinstance(plan, (str, os.PathLike)) else plan
