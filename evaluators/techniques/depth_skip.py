"""Depth-skip pruning of a U-Net (Kim et al., ACCV 2024): the `depth_skip` plan section.

The hooks live in `evaluators.runtime.unet` (shared with DeepCache); the search's parameter in
`search/params/depth_skip.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from evaluators.fields import integer, json_object
from evaluators.techniques.base import Technique, register
from evaluators.techniques.sampling import Sampling


@register
@dataclass(frozen=True)
class DepthSkip(Technique):
    """Depth-skip pruning of a U-Net (Kim et al., ACCV 2024): never run the deepest levels.

    Attributes:
        drop_levels: how many of the deepest resolution levels to drop. The kept encoder ends at
            the last skip output of the shallower levels (skip d, in DeepCache's numbering: d = 8
            for one level of the Stable Diffusion U-Net, the released code's `depth 9`); the mid
            block and the decoder layers that consumed the dropped skips never run, and the first
            kept decoder layer gets zeros in place of the deep path, concatenated with skip d.
    """

    section: ClassVar[str] = "depth_skip"
    title: ClassVar[str] = "depth-skip"
    order: ClassVar[int] = 20
    installer: ClassVar[str] = "evaluators.runtime.unet:install_unet_plan"

    drop_levels: int

    @classmethod
    def parse(cls, data: Any, sampling: Sampling) -> DepthSkip:
        d = json_object(data, "depth_skip", {"drop_levels"}, {"drop_levels"})
        return cls(integer(d, "drop_levels", "depth_skip", 1))

    def to_dict(self) -> dict[str, Any]:
        return vars(self).copy()

    def summary(self) -> dict[str, str]:
        return {"depth_skip": f"{self.drop_levels} deepest level(s) dropped"}

    def timeline(self, num_steps: int) -> dict[str, Any]:
        return {"depth_skip": self.drop_levels}
