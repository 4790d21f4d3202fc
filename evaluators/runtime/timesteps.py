"""Timestep placement of a plan: the scheduler's own (`uniform`) or gamma-shaped (Kim et al.).

`gamma` places step i (0 = the noisiest) at t_i = floor((T_train - 1) * ((N - i) / N) ** gamma):
gamma > 1 spends more of the N steps at low noise, gamma < 1 at high noise. Timesteps are kept
strictly decreasing (a collision moves the later one down by one).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from diffusers import DDIMScheduler
from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput

from evaluators.plan import Plan, PlanError


def gamma_timesteps(num_train_timesteps: int, num_steps: int, gamma: float) -> list[int]:
    top = num_train_timesteps - 1
    raw = [math.floor(top * ((num_steps - i) / num_steps) ** gamma) for i in range(num_steps)]
    out: list[int] = []
    for t in raw:
        out.append(min(t, out[-1] - 1) if out else t)
    if out[-1] < 0:
        raise PlanError(f"sampling.gamma: {num_steps} distinct timesteps do not fit below "
                        f"{num_train_timesteps} with gamma {gamma}; lower gamma or the step count")
    return out


class GammaDDIMScheduler(DDIMScheduler):
    """DDIM (eta = 0) on an explicit, decreasing list of timesteps."""

    plan_timesteps: list[int] = []

    def set_timesteps(self, num_inference_steps: int, device: Any = None) -> None:
        if num_inference_steps != len(self.plan_timesteps):
            raise PlanError(f"the plan places {len(self.plan_timesteps)} timesteps but the "
                            f"pipeline asked for {num_inference_steps}; call it with "
                            f"num_inference_steps={len(self.plan_timesteps)}")
        self.num_inference_steps = num_inference_steps
        self.timesteps = torch.tensor(self.plan_timesteps, dtype=torch.long, device=device)

    def _previous(self, timestep: int) -> int:
        steps = self.plan_timesteps
        i = steps.index(timestep)
        return steps[i + 1] if i + 1 < len(steps) else -1

    def step(self, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor,
             eta: float = 0.0, *args: Any, return_dict: bool = True, **kwargs: Any) -> Any:
        if eta != 0.0:
            raise PlanError("gamma-spaced plans run DDIM with eta = 0")
        t = int(timestep)
        prev = self._previous(t)
        a_t = self.alphas_cumprod[t].to(sample.device, sample.dtype)
        a_prev = (self.alphas_cumprod[prev] if prev >= 0 else self.final_alpha_cumprod).to(
            sample.device, sample.dtype)
        kind = self.config.prediction_type
        if kind == "epsilon":
            eps = model_output
            x0 = (sample - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        elif kind == "sample":
            x0 = model_output
            eps = (sample - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        else:  # v_prediction
            x0 = a_t.sqrt() * sample - (1 - a_t).sqrt() * model_output
            eps = a_t.sqrt() * model_output + (1 - a_t).sqrt() * sample
        if self.config.clip_sample:
            r = self.config.clip_sample_range
            x0 = x0.clamp(-r, r)
        prev_sample = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        if not return_dict:
            return (prev_sample, x0)
        return DDIMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)


def plan_scheduler(scheduler: Any, plan: Plan) -> Any:
    """The scheduler to sample a plan with: `scheduler` itself for uniform spacing, else a
    gamma-spaced DDIM built from its config."""
    if plan.sampling.spacing == "uniform":
        return scheduler
    if not isinstance(scheduler, DDIMScheduler):
        raise PlanError(f"sampling.spacing 'gamma' needs a DDIM scheduler, got "
                        f"{type(scheduler).__name__}; use DDIMScheduler.from_config(...)")
    out = GammaDDIMScheduler.from_config(scheduler.config)
    out.plan_timesteps = gamma_timesteps(scheduler.config.num_train_timesteps,
                                         plan.num_steps, plan.sampling.gamma or 1.0)
    return out
