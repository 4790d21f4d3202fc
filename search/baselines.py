"""The U-Net baseline: the DeepCache grid the paper runs (branch x interval, uniform and
non-uniform), mapped onto this model, and `spread` to fit any grid into an evaluation budget.

Sources (horseee/DeepCache; the paper's tables as quoted there):
- `DeepCache/ddpm/ddpm/functions/deepcache_denoising.py` (`generalized_steps`,
  `sample_from_quad_center`): uniform full steps 0, N, 2N, ...; non-uniform places
  ceil(T / N) full steps by a power law around a center.
- `DeepCache/README.md`, `experiments/README.md`, `DeepCache/ddpm/ddim.py`: the DDPM runs use
  100 DDIM steps, `--cache_interval 5 --branch 2` ("the 3-th skip path"). In
  `DeepCache/ddpm/ddpm/models/deepcache_diffusion.py` that branch keeps the whole first
  resolution level and its downsampler fresh: skip 3 in the `cache_branch_id` numbering edgediff
  uses (`DeepCache/extension/deepcache.py`: 0 = conv_in's output).
- `README.md`: Stable Diffusion with `cache_interval=5`, branch 0 (`cache_layer_id=0,
  cache_block_id=0`), `uniform=True`; its non-uniform example is `pow=1.4, center=15` at 50 steps.
  `experiments/generate.py` evaluates SD at N = 2, branch 0, 50 steps; the SDXL example uses N = 3.
- `experiments/ldm/sample_ddp_deepcache.py`, `experiments/ldm/ldm/models/diffusion/ddpm.py`,
  `.../openaimodel.py`: LDM-4-G at 250 DDIM steps caches at the shallowest branch
  (`replicate_layer = 0`) and offers a non-uniform schedule (center 0, pow 1.5); the paper uses
  non-uniform for large N (REFERENCES.md).
- horseee/DeepCache issue #37 quotes the paper: "we choose the skip branch 3/1/2 for DDPMs,
  LDM-4-G and Stable Diffusion respectively" (shallow branches of 12) and "We choose N=5"; the
  appendix tables (13, 14) ablate the interval and the branch on SD v1.5.

Mapping onto this model (every choice below is ours where the sources give none):
- intervals: uniform N in {2, 3, 5, 10} (the N the sources run); non-uniform for the large N,
  {5, 10}, at center 0.3 of the steps and starting power 1.4 (the README's 15 of 50, pow 1.4).
  Non-uniform plans the power law cannot place, or that place the uniform steps, are the uniform
  plan and are left out as duplicates. Intervals above the step count are left out.
- branches: the first skip of every resolution level plus the deepest skip. For a U-Net with two
  resnets per block that is 0, 3, 6, ... as in DeepCache's numbering, so branch 0 (the LDM-4-G
  code, the SD README) and branch 3 (the DDPM runs) carry over unchanged; the deeper ones stand
  in for the paper's branch ablation. The shipped digits U-Net (9 skips, 3 levels): 0, 3, 6, 8.
- steps, guidance and spacing: the base plan's (the paper compares at a fixed step count).

The grid is ordered from the most to the least expensive by a rough, model-free cost estimate
(full steps count 1, a partial step at branch m counts (m + 1) / (num_branches + 1), the mid block
being one more unit), so `spread(grid, k)` for a small k still spans the cost range and mixes
branches and intervals. The estimate only orders the grid; the evaluator counts the real MACs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from evaluators.plan import Plan
from search.space import UNetSpace, skip_levels

T = TypeVar("T")

UNIFORM_INTERVALS = (2, 3, 5, 10)
NONUNIFORM_INTERVALS = (5, 10)
NONUNIFORM_CENTER = 0.3


def spread(items: Sequence[T], budget: int) -> list[T]:
    """An evenly spaced subset of `budget` items keeping the first and the last (all items if
    budget >= len(items); the first alone for a budget of 1)."""
    n = len(items)
    if budget >= n:
        return list(items)
    if budget <= 0:
        return []
    if budget == 1:
        return [items[0]]
    step = (n - 1) / (budget - 1)  # >= 1, so rounded positions are distinct
    return [items[math.floor(i * step + 0.5)] for i in range(budget)]


def grid_branches(facts: Mapping[str, Any]) -> list[int]:
    """The first skip of every resolution level, and the deepest skip."""
    levels = skip_levels(facts)
    firsts = [levels.index(level) for level in sorted(set(levels))]
    return sorted(set(firsts + [len(levels) - 1]))


def deepcache_grid(facts: Mapping[str, Any], base: Plan) -> list[tuple[str, Plan]]:
    """(label, plan) of the DeepCache grid for this U-Net, most expensive first."""
    space = UNetSpace(facts, base)
    steps = base.num_steps
    point = {"steps": steps, "center": NONUNIFORM_CENTER, "drop_levels": 0, "spacing": "uniform"}
    if base.sampling.spacing == "gamma" and len(space.spacings) > 1:
        point["spacing"] = space.params_of(base)["spacing"]
    schedules = [(n, "uniform") for n in UNIFORM_INTERVALS] + \
        [(n, "nonuniform") for n in NONUNIFORM_INTERVALS]
    branches = grid_branches(facts)
    rows: list[tuple[float, int, int, str, str, Plan]] = []
    seen: set[str] = set()
    for interval, schedule in schedules:
        if interval > steps:
            continue
        for branch in branches:
            plan = space.build({**point, "branch": branch, "interval": interval,
                                "schedule": schedule})
            if plan.deepcache is None or plan.content_hash() in seen:
                continue
            seen.add(plan.content_hash())
            kind = "non-uniform" if plan.deepcache.schedule == "nonuniform" else "uniform"
            label = f"branch {branch} · 1:{interval} {kind}"
            full = len(plan.deepcache.full_step_indices(steps))
            partial_share = (branch + 1) / (space.num_branches + 1)  # the mid block: one more
            cost = (full + (steps - full) * partial_share) / steps
            rows.append((-cost, branch, interval, kind, label, plan))
    rows.sort(key=lambda r: r[:4])
    return [(label, plan) for *_, label, plan in rows]
