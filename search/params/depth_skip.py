"""The `depth_skip` parameter (Kim et al.): `drop_levels` 0 (off) or 1 (the deepest resolution
level never runs), as far as the U-Net has levels below its input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from evaluators.plan import Plan
from search.params.base import ParamGroup, nearest, register_group
from search.params.deepcache import skip_levels

DROP_LEVELS = (0, 1)


@register_group
class DepthSkipParams(ParamGroup):
    section = "depth_skip"

    def __init__(self, facts: Mapping[str, Any], base: Plan, steps: Sequence[int]) -> None:
        super().__init__(facts, base, steps)
        self.max_level = max(skip_levels(facts))
        self.drops = tuple(d for d in DROP_LEVELS if d <= self.max_level)

    def choices(self) -> dict[str, tuple[Any, ...]]:
        return {"drop_levels": self.drops}

    def build(self, params: Mapping[str, Any], body: dict[str, Any], steps: int) -> None:
        drop = int(params["drop_levels"])
        if drop:
            body["depth_skip"] = {"drop_levels": drop}

    def params_of(self, plan: Plan, steps: int) -> dict[str, Any]:
        if plan.depth_skip is None:
            return {"drop_levels": 0}
        return {"drop_levels": nearest(self.drops, plan.depth_skip.drop_levels)}
