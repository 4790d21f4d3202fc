"""Hand-made plans for a loaded model: one technique everywhere, as a starting point or to evaluate
by hand (`edgediff plan`). Searched plans come from `search/`.
"""

from __future__ import annotations

from typing import Any

import torch

from evaluators.families import facts_of
from evaluators.plan import Plan, PlanError
from evaluators.runtime import check_plan_installs, model_ref


def uniform_plan(name: str, model: torch.nn.Module, *, steps: int, guidance_scale: float,
                 attention: str | None = None, from_step: int = 1, window: int | None = None,
                 deepcache_branch: int | None = None, interval: int = 1,
                 drop_levels: int | None = None, gamma: float | None = None) -> Plan:
    """A plan that uses one technique at every step from `from_step` on.

    Transformers: `attention` (a DiTFastAttn method) for every self-attention layer at steps
    >= `from_step` (step 0 is always full), window `window` on both sides for `wars`.
    U-Nets: DeepCache at `deepcache_branch` with a uniform `interval`, and/or depth-skip of
    `drop_levels` levels. Families that run diffusers' caches (FLUX, SD3, Qwen-Image, Wan) get
    the uncompressed plan (add a cache section by hand, docs/PLANS.md); `attention` is refused.
    `gamma` places the timesteps as (i/N)^gamma instead of uniformly.
    The plan is validated like a loaded file and checked against the model.
    """
    ref = model_ref(model, name)
    data: dict[str, Any] = {
        "format": "edgediff-plan", "version": 1, "model": vars(ref),
        "sampling": {"num_inference_steps": steps, "guidance_scale": guidance_scale},
    }
    if gamma is not None:
        data["sampling"].update(spacing="gamma", gamma=gamma)
    facts = facts_of(model)
    family = facts.family
    if "attention" in family.refused or (
            facts.denoiser == "transformer" and "attention" not in family.techniques):
        if attention is not None or window is not None:  # e.g. FLUX, SD3: diffusers' caches
            data["attention"] = {"methods": [["full"] * steps]}  # refused below, in one line
            family.check_sections(Plan.from_dict(data), type(model).__name__)
        if deepcache_branch is not None or drop_levels is not None:
            raise PlanError(f"DeepCache and depth-skip are U-Net techniques; '{name}' is a "
                            f"transformer of the {family.name} family: write its plan without "
                            f"them and add one of {', '.join(family.techniques)}")
    elif facts.denoiser == "transformer":
        if deepcache_branch is not None or drop_levels is not None:
            raise PlanError(f"DeepCache and depth-skip are U-Net techniques; '{name}' is a "
                            "transformer: use --attention")
        if attention is not None and not 1 <= from_step < steps:
            raise PlanError(f"--from-step {from_step} is out of range: give 1 to {steps - 1} "
                            f"(step 0 is always full; the plan has {steps} steps)")
        method = attention or "full"
        row = ["full" if t < from_step else method for t in range(steps)]
        data["attention"] = {"methods": [row] * (facts.num_layers or 0)}
        if window is not None:
            data["attention"]["window"] = {"left": window, "right": window}
    else:
        if attention is not None:
            raise PlanError(f"attention methods are for transformers; '{name}' is a U-Net: use "
                            "--deepcache-branch/--interval or --drop-levels")
        if interval != 1 and deepcache_branch is None:
            raise PlanError("--interval needs --deepcache-branch (the skip branch to cache at)")
        if deepcache_branch is not None:
            data["deepcache"] = {"branch": deepcache_branch, "interval": interval}
        if drop_levels is not None:
            data["depth_skip"] = {"drop_levels": drop_levels}
    plan = Plan.from_dict(data)
    check_plan_installs(model, plan)  # every range (branch, levels, layers), before it is written
    return plan
