"""The `spacing` parameter of the `sampling` section: `uniform`, `gamma1.5` or `gamma2.0`
(timesteps at ((T - i) / T) ** gamma, Kim et al.; gamma choices only for a DDIM base plan, the only
scheduler gamma spacing supports)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from evaluators.plan import Plan
from search.params.base import ParamGroup, nearest, register_group

GAMMAS = (1.5, 2.0)


@register_group
class SpacingParams(ParamGroup):
    section = "spacing"

    def __init__(self, facts: Mapping[str, Any], base: Plan, steps: Sequence[int]) -> None:
        super().__init__(facts, base, steps)
        gammas = GAMMAS if base.sampling.scheduler == "DDIMScheduler" else ()
        self.spacings = ("uniform",) + tuple(f"gamma{g}" for g in gammas)

    def choices(self) -> dict[str, tuple[Any, ...]]:
        return {"spacing": self.spacings}

    def build(self, params: Mapping[str, Any], body: dict[str, Any], steps: int) -> None:
        sampling = body["sampling"]
        sampling.pop("gamma", None)
        sampling["spacing"] = "uniform"
        if params["spacing"] != "uniform":
            sampling.update(spacing="gamma", gamma=float(params["spacing"][len("gamma"):]))

    def params_of(self, plan: Plan, steps: int) -> dict[str, Any]:
        if plan.sampling.spacing == "gamma" and len(self.spacings) > 1:
            return {"spacing": f"gamma{nearest(GAMMAS, plan.sampling.gamma or 1.0)}"}
        return {"spacing": "uniform"}
