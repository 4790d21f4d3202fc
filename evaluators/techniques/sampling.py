"""The `sampling` section (required in every plan): steps, guidance, scheduler, timestep placement.

Fewer steps is the simplest technique of all; `gamma` spacing is Kim et al.'s (ACCV 2024)
((T - i) / T) ** gamma placement (the scheduler swap is `evaluators.runtime.timesteps`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from evaluators.fields import choice, fail, integer, json_object, number, string

MAX_STEPS = 1000  # caps a plan's sampling section, and so the spec of the uncompressed model
MAX_GUIDANCE = 100.0

Spacing = Literal["uniform", "gamma"]


@dataclass(frozen=True)
class Sampling:
    """How the generation is run.

    Attributes:
        num_inference_steps: denoising steps T; every per-step list in the plan has T entries.
        guidance_scale: classifier-free guidance scale; > 1 means the batch holds two CFG halves.
        scheduler: the scheduler class the plan was measured with.
        spacing: `uniform` (the scheduler's own timesteps) or `gamma` (t_i placed as
            ((T - i) / T) ** gamma of the training range, Kim et al. ACCV 2024; needs DDIM).
        gamma: the exponent for `gamma` spacing; > 1 puts more steps at low noise.
    """

    num_inference_steps: int
    guidance_scale: float
    scheduler: str = "DDIMScheduler"
    spacing: Spacing = "uniform"
    gamma: float | None = None

    def __post_init__(self) -> None:  # whole numbers from code or JSON hash alike
        object.__setattr__(self, "guidance_scale", float(self.guidance_scale))
        if self.gamma is not None:
            object.__setattr__(self, "gamma", float(self.gamma))

    @classmethod
    def parse(cls, data: Any) -> Sampling:
        d = json_object(data, "sampling", {"num_inference_steps", "guidance_scale", "scheduler",
                                           "spacing", "gamma"},
                        {"num_inference_steps", "guidance_scale"})
        steps = integer(d, "num_inference_steps", "sampling", 1, MAX_STEPS)
        guidance = number(d, "guidance_scale", "sampling", 1.0, MAX_GUIDANCE)
        scheduler = string(d, "scheduler", "sampling") if "scheduler" in d else "DDIMScheduler"
        spacing = choice(d, "spacing", "sampling", ("uniform", "gamma")) if "spacing" in d \
            else "uniform"
        gamma = None
        if spacing == "gamma":
            if d.get("gamma") is None:
                raise fail("sampling.gamma", "gamma spacing without a gamma",
                           "add e.g. \"gamma\": 1.5")
            gamma = number(d, "gamma", "sampling", 0.2, 5.0)
        elif d.get("gamma") is not None:
            raise fail("sampling.gamma", "gamma given with uniform spacing",
                       "set \"spacing\": \"gamma\" or drop gamma")
        return cls(steps, guidance, scheduler, spacing, gamma)  # type: ignore[arg-type]

    def summary(self) -> dict[str, Any]:
        return {"steps": self.num_inference_steps, "guidance_scale": self.guidance_scale,
                "scheduler": self.scheduler,
                "spacing": self.spacing if self.gamma is None else f"{self.spacing} {self.gamma:g}"}
