"""DeepCache on a U-Net (Ma et al., CVPR 2024): the `deepcache` plan section.

The hooks live in `evaluators.runtime.unet` (shared with depth-skip: a deep module either returns
its cached output or a zero placeholder); the search's parameters in `search/params/deepcache.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from evaluators.fields import choice, fail, integer, json_object, number
from evaluators.techniques.base import Technique, register
from evaluators.techniques.sampling import Sampling

CacheSchedule = Literal["uniform", "nonuniform", "explicit"]


@register
@dataclass(frozen=True)
class DeepCache(Technique):
    """DeepCache on a U-Net (Ma et al., CVPR 2024).

    Attributes:
        branch: skip branch m (entry m of diffusers' `down_block_res_samples`, 0 = conv_in's output).
            At a partial step skip m and everything shallower run; deeper modules return the
            outputs cached at the last full step. Same numbering as DeepCache's `cache_branch_id`.
        interval: N of "1:N inference": one full step then N - 1 partial steps (1 = off).
        schedule: `uniform` (full steps 0, N, 2N, ...), `nonuniform` (ceil(T / N) full steps
            placed by a power law around `center`), or `explicit` (`full_steps` as given).
        center: the step the non-uniform full steps crowd around.
        power: the starting exponent of the non-uniform placement (lowered by 0.02 until the
            count of full steps comes out right).
        full_steps: the full steps of an `explicit` schedule (must include 0).
    """

    section: ClassVar[str] = "deepcache"
    title: ClassVar[str] = "DeepCache"
    order: ClassVar[int] = 10
    installer: ClassVar[str] = "evaluators.runtime.unet:install_unet_plan"

    branch: int
    interval: int = 1
    schedule: CacheSchedule = "uniform"
    center: int | None = None
    power: float | None = None
    full_steps: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.power is not None:
            object.__setattr__(self, "power", float(self.power))
        if self.full_steps is not None:
            object.__setattr__(self, "full_steps", tuple(self.full_steps))

    def full_step_indices(self, num_steps: int) -> tuple[int, ...]:
        """The steps at which the whole U-Net runs."""
        if self.schedule == "explicit":
            return tuple(self.full_steps or ())
        if self.schedule == "nonuniform":
            count = math.ceil(num_steps / self.interval)
            steps = power_law_steps(num_steps, count, self.center or 0, self.power or 1.2)
            if len(steps) != count:
                raise fail("deepcache", f"the power law around center {self.center} gives "
                           f"{len(steps)} full steps, not ceil({num_steps}/{self.interval}) = "
                           f"{count}", "move center or raise power, or list explicit full_steps")
            return steps
        return tuple(range(0, num_steps, self.interval))

    # --- the plan section -------------------------------------------------------------------
    @classmethod
    def parse(cls, data: Any, sampling: Sampling) -> DeepCache:
        steps = sampling.num_inference_steps
        d = json_object(data, "deepcache", {"branch", "interval", "schedule", "center", "power",
                                            "full_steps"}, {"branch"})
        branch = integer(d, "branch", "deepcache", 0)
        schedule = choice(d, "schedule", "deepcache", ("uniform", "nonuniform", "explicit")) \
            if "schedule" in d else "uniform"
        interval = integer(d, "interval", "deepcache", 1, steps) if "interval" in d else 1
        center = power = full_steps = None
        if schedule == "nonuniform":
            for key in ("center", "power"):
                if d.get(key) is None:
                    raise fail(f"deepcache.{key}", "a nonuniform schedule needs center and power",
                               "add e.g. \"center\": 15, \"power\": 1.4")
            center = integer(d, "center", "deepcache", 0, steps - 1)
            power = number(d, "power", "deepcache", 1.0, 4.0)
            if power <= 1.0:
                raise fail("deepcache.power", f"{power} is out of range", "use a value in (1, 4]")
        if schedule == "explicit":
            full_steps = _explicit_steps(d.get("full_steps"), steps)
        elif d.get("full_steps") is not None:
            raise fail("deepcache.full_steps", "full_steps given without an explicit schedule",
                       "set \"schedule\": \"explicit\" or drop full_steps")
        if schedule != "nonuniform" and (d.get("center") is not None or d.get("power") is not None):
            raise fail("deepcache", f"center/power given with a {schedule} schedule",
                       "set \"schedule\": \"nonuniform\" or drop them")
        plan = cls(branch, interval, schedule, center, power, full_steps)  # type: ignore[arg-type]
        plan.full_step_indices(steps)  # a power law that cannot place the steps fails here
        return plan

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if "full_steps" in out:
            out["full_steps"] = list(out["full_steps"])
        return out

    def summary(self) -> dict[str, str]:
        shape = f" (center {self.center}, power {self.power:g})" if self.schedule == "nonuniform" \
            else ""
        return {"deepcache": f"branch {self.branch}, 1:{self.interval} {self.schedule}{shape}"}

    def timeline(self, num_steps: int) -> dict[str, Any]:
        if self.interval <= 1:
            return {}
        full = set(self.full_step_indices(num_steps))
        return {"branch": self.branch,
                "row": ["full" if s in full else "partial" for s in range(num_steps)]}


def _explicit_steps(raw: Any, steps: int) -> tuple[int, ...]:
    if not isinstance(raw, list) or not raw or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in raw):
        raise fail("deepcache.full_steps", f"expected a list of step numbers, got {raw!r}",
                   "list the steps that run the whole U-Net, starting with 0")
    if raw != sorted(set(raw)) or raw[0] != 0 or raw[-1] >= steps:
        raise fail("deepcache.full_steps", f"{raw} is not increasing from 0 below {steps}",
                   f"list distinct steps in 0..{steps - 1}, in order, starting with 0")
    return tuple(raw)


def power_law_steps(num_steps: int, count: int, center: int, power: float) -> tuple[int, ...]:
    """DeepCache's non-uniform full steps: `count` steps dense near `center`, sparse far from it.

    Points are spaced evenly in sign(x) |x|^(1/power) on both sides of `center`, mapped back with
    the power, truncated and deduplicated; the first and last points (the ends of the range) are
    dropped and step 0 is always kept. `power` is lowered by 0.02 until exactly `count` steps come
    out (or it reaches 1). Deliberate difference from the reference's `sample_from_quad_center`:
    there Python evaluates `(-center) ** (1 / pow)` as a complex number, which bends the placement
    away from the documented power law; an `explicit` schedule reproduces any list exactly.
    """
    steps: list[int] = [0]
    while power > 1:
        lo, hi = -(center ** (1 / power)), (num_steps - center) ** (1 / power)
        points = [lo + (hi - lo) * i / count for i in range(count + 1)]
        mapped = sorted({math.trunc(math.copysign(abs(u) ** power, u)) for u in points})
        steps = [0] + [x + center for x in mapped[1:-1]]
        if len(steps) == count:
            break
        power -= 0.02
    return tuple(sorted({s for s in steps if 0 <= s < num_steps}))
