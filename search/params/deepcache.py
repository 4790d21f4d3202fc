"""The `deepcache` parameters (DeepCache's `cache_branch_id` numbering):

- `branch`: 0..num_branches-1;
- `interval`: 1, 2, 3, 4, 5, 6, 8, 10 (1 = DeepCache off; intervals above the smallest step
  count are left out);
- `schedule`: `uniform` or `nonuniform` (ceil(steps / interval) full steps placed by DeepCache's
  power law, starting power 1.4 as in the DeepCache README's Stable Diffusion example);
- `center`: the non-uniform center as a share of the steps, 0.0 (the reference LDM-4-G code
  places full steps from step 0), 0.3 (the README's center 15 of 50 steps) or 0.5. Where the power
  law cannot place the required count, or places exactly the uniform steps, the plan is uniform.

With a depth-skip (`drop_levels` of the `depth_skip` group), a branch at or below the depth-skip's
last kept skip caches nothing (a partial step would compute every kept module), so the plan has no
DeepCache section.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from evaluators.plan import DeepCache, Plan, PlanError
from search.params.base import ParamGroup, nearest, register_group

INTERVALS = (1, 2, 3, 4, 5, 6, 8, 10)
CENTERS = (0.0, 0.3, 0.5)
NONUNIFORM_POWER = 1.4


def skip_levels(facts: Mapping[str, Any]) -> list[int]:
    """The resolution level of each skip branch (from the facts, or derived for a standard
    diffusers U-Net: conv_in, then per level its resnets and a downsampler)."""
    if "skip_levels" in facts:
        return [int(v) for v in facts["skip_levels"]]
    levels, branches = int(facts["max_level"]) + 1, int(facts["num_branches"])
    per_level, rest = divmod(branches - 1 - (levels - 1), levels)
    if rest or per_level < 1:
        raise ValueError(f"cannot derive the skip levels of a U-Net with {branches} branches and "
                         f"{levels} levels; pass the facts from search.space.model_facts(unet)")
    out = [0]
    for level in range(levels):
        out += [level] * per_level + ([level + 1] if level < levels - 1 else [])
    return out


def last_kept_skip(levels: Sequence[int], drop_levels: int) -> int:
    """The depth-skip's last kept skip d (as `UNetLayout.depth_for`)."""
    top = max(levels) - drop_levels
    return max(i for i, level in enumerate(levels) if level <= top)


@register_group
class DeepCacheParams(ParamGroup):
    """Branch, interval and schedule of DeepCache."""

    section = "deepcache"

    def __init__(self, facts: Mapping[str, Any], base: Plan, steps: Sequence[int]) -> None:
        super().__init__(facts, base, steps)
        self.levels = skip_levels(facts)
        self.num_branches = len(self.levels)
        self.intervals = tuple(n for n in INTERVALS if n <= min(self.steps))

    def choices(self) -> dict[str, tuple[Any, ...]]:
        return {"branch": tuple(range(self.num_branches)), "interval": self.intervals,
                "schedule": ("uniform", "nonuniform"), "center": CENTERS}

    def build(self, params: Mapping[str, Any], body: dict[str, Any], steps: int) -> None:
        branch, interval = int(params["branch"]), int(params["interval"])
        drop = int(params.get("drop_levels", 0))
        if interval > 1 and not (drop and branch >= last_kept_skip(self.levels, drop)):
            body["deepcache"] = self._deepcache(steps, branch, interval, params)

    @staticmethod
    def _deepcache(steps: int, branch: int, interval: int, params: Mapping[str, Any]) -> dict:
        uniform = {"branch": branch, "interval": interval}
        if params["schedule"] != "nonuniform":
            return uniform
        nonuniform = {**uniform, "schedule": "nonuniform", "power": NONUNIFORM_POWER,
                      "center": min(steps - 1, math.floor(float(params["center"]) * steps + 0.5))}
        try:
            full = DeepCache(branch, interval, "nonuniform", nonuniform["center"],
                             NONUNIFORM_POWER).full_step_indices(steps)
        except PlanError:  # the power law cannot place ceil(steps / interval) full steps
            return uniform
        return uniform if full == tuple(range(0, steps, interval)) else nonuniform

    def params_of(self, plan: Plan, steps: int) -> dict[str, Any]:
        params: dict[str, Any] = {"branch": 0, "interval": 1, "schedule": "uniform",
                                  "center": CENTERS[0]}
        dc = plan.deepcache
        if dc is not None:
            params["branch"] = min(max(dc.branch, 0), self.num_branches - 1)
            count = len(dc.full_step_indices(plan.num_steps)) or 1
            interval = dc.interval if dc.schedule != "explicit" else plan.num_steps / count
            params["interval"] = nearest(self.intervals, interval)
            if dc.schedule == "nonuniform":
                params["schedule"] = "nonuniform"
                params["center"] = nearest(CENTERS, (dc.center or 0) / plan.num_steps)
        return params
