"""Does this generation fit the plan? Checked at the first denoiser call of every generation.

A plan is measured for one way of sampling; run another way it would silently do something else.
Each mismatch is refused in one line naming it and the fix:

- steps: the pipeline's scheduler was set to another step count than the plan holds (the clock,
  `runtime.clock`, also refuses a generation that ends early where no pipeline is seen);
- scheduler order: a second-order scheduler (Heun's: two calls per step, repeated timesteps);
- CFG under `asc`: the batch must hold the two CFG halves in the family's order. A class-labelled
  batch is read from its labels (the null class is the unconditional half); otherwise the halves
  must share their latents, as every CFG pipeline batches them (guidance 1.0 does not);
- resolution: where the plan records the geometry it was measured at (`notes.geometry.tokens`,
  written by the evaluator for pipelines with a geometry; outside the content hash, so plan
  hashes do not change), the generation's tokens per sample must match. A plan without it is
  not checked.
"""

from __future__ import annotations

from typing import Any

import torch

from evaluators.families import family_of
from evaluators.plan import SHARES_CFG, Plan, PlanError

_SAMPLE_ARGS = ("hidden_states", "sample")


def geometry_note(model: torch.nn.Module, geometry: Any) -> dict[str, Any]:
    """The `notes.geometry` of a plan measured at `geometry` (`evaluators.calls.Geometry`)."""
    from evaluators.calls import latent_tokens

    return {"height": int(geometry.height), "width": int(geometry.width),
            "frames": int(geometry.frames), "tokens": latent_tokens(model, geometry)}


def check_geometry(plan: Plan, measured: Plan) -> None:
    """Refuse `plan` up front where it records another geometry than `measured` (the evaluator's
    uncompressed plan) does; unchecked where either records none."""
    ours, theirs = plan.notes.get("geometry"), measured.notes.get("geometry")
    if not (isinstance(ours, dict) and isinstance(theirs, dict)):
        return
    if ours.get("tokens") != theirs.get("tokens"):
        raise PlanError(f"the plan was measured at {_size(ours)} ({ours.get('tokens')} tokens per "
                        f"sample) but this model generates at {_size(theirs)} "
                        f"({theirs.get('tokens')} tokens); use a plan searched at that size")


def _size(geometry: dict[str, Any]) -> str:
    size = f"{geometry.get('height')}x{geometry.get('width')} px"
    if geometry.get("frames", 1) != 1:
        size += f", {geometry['frames']} frames"
    return size


def shares_cfg(plan: Plan) -> bool:
    attention = plan.attention
    return attention is not None and any(m in SHARES_CFG for row in attention.methods
                                         for m in row)


class FitCheck:
    """The checks of one applied plan, run by the step clock when a generation starts."""

    def __init__(self, target: Any, model: torch.nn.Module, plan: Plan) -> None:
        self.pipeline = None if target is model else target
        self.model, self.plan = model, plan
        self.shares_cfg = shares_cfg(plan)
        geometry = plan.notes.get("geometry")
        tokens = geometry.get("tokens") if isinstance(geometry, dict) else None
        self.geometry = geometry if isinstance(tokens, int) and tokens > 0 else None

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        sample = _sample(args, kwargs)
        if sample is None or sample.device.type == "meta":
            return
        if self.pipeline is not None:
            self._check_scheduler(getattr(self.pipeline, "scheduler", None))
        if self.shares_cfg:
            self._check_cfg(sample, kwargs)
        if self.geometry is not None:
            self._check_tokens(sample)

    def _check_scheduler(self, scheduler: Any) -> None:
        if scheduler is None:
            return
        name, n = type(scheduler).__name__, self.plan.num_steps
        order = getattr(scheduler, "order", 1)
        if isinstance(order, int) and order != 1:
            raise PlanError(f"the pipeline's {name} is a second-order scheduler ({order} denoiser "
                            f"calls per step) but plans hold one call per step; use a first-order "
                            f"scheduler (e.g. pipe.scheduler = EulerDiscreteScheduler.from_config("
                            f"pipe.scheduler.config))")
        steps = getattr(scheduler, "num_inference_steps", None)
        if isinstance(steps, int) and steps != n:
            raise PlanError(f"the pipeline runs {steps} steps but the plan holds {n}; call it with "
                            f"num_inference_steps={n}, or search a plan at {steps} steps")

    def _check_cfg(self, sample: torch.Tensor, kwargs: dict[str, Any]) -> None:
        guidance = getattr(self.pipeline, "_guidance_scale", None)
        if isinstance(guidance, (int, float)) and guidance <= 1.0:
            raise self._no_halves(sample, f"the pipeline runs guidance_scale {guidance:g}")
        if sample.shape[0] % 2:
            raise self._no_halves(sample)
        first, second = sample.chunk(2)
        labels = kwargs.get("class_labels")
        null = _null_class(self.model)
        if isinstance(labels, torch.Tensor) and null is not None and labels.numel() == sample.shape[0]:
            cond_first = family_of(self.model).cfg_order_of(self.model) == "cond-first"
            a, b = (labels == null).chunk(2)
            uncond, cond = (b, a) if cond_first else (a, b)
            if bool(uncond.all()) and not bool(cond.any()):
                return
            if bool(cond.all()) and not bool(uncond.any()):
                order = "(cond, uncond)" if cond_first else "(uncond, cond)"
                raise PlanError(f"plan.attention: 'asc' computes the conditional half of a "
                                f"{order} batch (the {family_of(self.model).name} family's CFG "
                                f"order), but this batch holds the halves the other way round; "
                                f"batch them as {order} or use a plan without asc")
            raise self._no_halves(sample)
        if not torch.equal(first, second):
            raise self._no_halves(sample)

    def _no_halves(self, sample: torch.Tensor,
                   why: str = "guidance 1.0, or a pipeline that does not batch them") -> PlanError:
        return PlanError(f"plan.attention: 'asc' copies one CFG half onto the other, but this "
                         f"batch of {sample.shape[0]} does not hold two CFG halves ({why}); run "
                         f"with guidance_scale={self.plan.sampling.guidance_scale:g} and both "
                         "halves in one batch, or use a plan without asc")

    def _check_tokens(self, sample: torch.Tensor) -> None:
        from evaluators.calls import input_tokens

        assert self.geometry is not None
        tokens = input_tokens(self.model, sample)
        want = self.geometry["tokens"]
        if tokens is None or tokens == want:
            return
        raise PlanError(f"the plan was measured at {_size(self.geometry)} ({want} tokens per "
                        f"sample) but this generation has {tokens} tokens; generate at that size "
                        "or search a plan at this one")


def _sample(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    for name in _SAMPLE_ARGS:
        if isinstance(kwargs.get(name), torch.Tensor):
            return kwargs[name]
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    return None


def _null_class(model: torch.nn.Module) -> int | None:
    from evaluators.sampling import null_class

    return null_class(model)
