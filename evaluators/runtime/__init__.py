"""The plan runtime: `apply_plan(pipeline_or_model, plan)` installs a plan on a diffusers model.

    with apply_plan(pipe, Plan.load("plan.json")):
        images = pipe(...).images          # compressed
    images = pipe(...).images              # the model exactly as before

or `applied = apply_plan(model, plan)` ... `applied.remove()`. The model's family
(`evaluators/families/`) says which plan sections apply to it; every section the plan holds is
installed by its technique's installer (`evaluators/techniques/`, named by the section's class), in
plan-file order. A step clock on the denoiser's forward tells every technique which step is running
and clears their caches when a new generation starts; at the first call of each generation
`runtime.fit` checks that the generation fits the plan (steps, scheduler order, CFG halves under
`asc`, the recorded resolution) and refuses in one line what does not.

torch.compile: apply the plan, then compile the denoiser (the hooks are traced with it, without a
graph break; under compile the clock counts calls, so each generation must run the plan's steps);
a model compiled before `apply_plan` is refused.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from evaluators.families import ModelFacts, facts_of, family_of
from evaluators.plan import ModelRef, Plan, PlanError, config_fingerprint
from evaluators.runtime.clock import RunState, StepClockHook
from evaluators.runtime.fit import FitCheck
from evaluators.runtime.hooks import Installation
from evaluators.runtime.timesteps import plan_scheduler

__all__ = ["AppliedPlan", "apply_plan", "check_plan_fits", "check_plan_installs", "model_ref",
           "plan_scheduler"]

CLOCK_HOOK = "edgediff.clock"


def model_ref(model: torch.nn.Module, name: str) -> ModelRef:
    """The `model` section of a plan for this model."""
    cls = type(model).__name__
    return ModelRef(name, cls, config_fingerprint(cls, model.config))


def check_plan_fits(model: torch.nn.Module, plan: Plan) -> ModelFacts:
    """Raise PlanError unless `plan` was made for a model of this class and configuration and
    every section applies to its family; returns the model's facts."""
    cls = type(model).__name__
    family = family_of(model)
    if plan.model.model_class != cls:
        raise PlanError(f"plan.model.model_class: the plan is for a {plan.model.model_class} "
                        f"('{plan.model.name}') but the model is a {cls}; use a plan searched "
                        "for this model")
    if plan.model.fingerprint is not None:
        actual = config_fingerprint(cls, model.config)
        if actual != plan.model.fingerprint:
            raise PlanError(f"plan.model.fingerprint: the plan was found for '{plan.model.name}' "
                            f"(config {plan.model.fingerprint}) but this model's config is "
                            f"{actual}; use a plan searched for this model")
    facts = facts_of(model)  # a structure plans cannot handle fails here
    family.check_sections(plan, cls)
    return facts


def check_plan_installs(model: torch.nn.Module, plan: Plan) -> None:
    """`check_plan_fits`, then every range against this model's layout (DeepCache branch,
    depth-skip levels, attention layers): the plan is installed and removed again, nothing runs."""
    apply_plan(model, plan).remove()


class AppliedPlan:
    """A plan installed on a model; `remove()` (or leaving the `with` block) undoes it.

    Attributes:
        plan: the plan.
        model: the denoiser it is installed on.
        state: the step clock (`state.step`, `state.frozen`, `state.reset()`).
        runtimes: section name -> the runtime its installer returned (UNetRuntime for both
            `deepcache` and `depth_skip`, AttentionRuntime for `attention`, ...).
    """

    def __init__(self, target: Any, model: torch.nn.Module, plan: Plan) -> None:
        self.plan = plan
        self.model = model
        self.state = RunState(plan.num_steps)
        # pipelines that call the denoiser once per CFG half pass the same timestep twice
        # (the family's layout, or the pipeline's own: digits-flux runs real CFG on a FLUX model)
        layout = getattr(target, "cfg_layout", None) or getattr(family_of(model), "cfg", "")
        self.state.same_step_repeats = layout == "separate"
        self._target = target
        self._installation = Installation()
        self._scheduler: Any = None
        self.runtimes: dict[str, Any] = {}
        try:
            self._install_sections()
            clock = StepClockHook(self.state, model.forward, FitCheck(target, model, plan))
            self._installation.add_hook(model, clock, CLOCK_HOOK)
            if target is not model and hasattr(target, "scheduler"):
                self._swap_scheduler(target)
        except BaseException:
            self._installation.remove()
            raise

    def _install_sections(self) -> None:
        done: dict[Any, Any] = {}  # installer -> its runtime: shared installers run once
        for config in self.plan.sections:
            installer = type(config).load_installer()
            if installer not in done:
                done[installer] = installer(self.model, self.plan, self.state, self._installation)
            self.runtimes[type(config).section] = done[installer]

    @property
    def technique(self) -> Any:
        """The runtime of the plan's first section (None for a plan without sections)."""
        return next(iter(self.runtimes.values()), None)

    def _swap_scheduler(self, pipeline: Any) -> None:
        current = pipeline.scheduler
        if type(current).__name__ != self.plan.sampling.scheduler:
            warnings.warn(f"the plan was measured with {self.plan.sampling.scheduler}; the "
                          f"pipeline uses {type(current).__name__}", stacklevel=3)
        replacement = plan_scheduler(current, self.plan)
        if replacement is not current:
            self._scheduler = current
            pipeline.scheduler = replacement

    @property
    def active(self) -> bool:
        return self._installation is not None

    def reset(self) -> None:
        """Start the next forward as step 0 of a new generation, with empty caches."""
        self.state.reset()

    def remove(self) -> None:
        """Restore the model (and the pipeline's scheduler) exactly as they were."""
        if self._installation is None:
            return
        self.state.reset()
        self._installation.remove()
        self._installation = None  # type: ignore[assignment]
        if self._scheduler is not None:
            self._target.scheduler = self._scheduler
            self._scheduler = None

    def __enter__(self) -> AppliedPlan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def denoiser_of(target: Any) -> torch.nn.Module:
    """The model a plan acts on: the pipeline's `unet` or `transformer`, or the model itself."""
    if isinstance(target, torch.nn.Module):
        return target
    for name in ("transformer", "unet"):
        model = getattr(target, name, None)
        if isinstance(model, torch.nn.Module):
            return model
    raise PlanError(f"cannot apply a plan to a {type(target).__name__}: pass a diffusers pipeline "
                    "with a unet or transformer, or the model itself")


def apply_plan(target: Any, plan: Plan) -> AppliedPlan:
    """Install `plan` on a diffusers pipeline or model; returns a handle (also a context manager)."""
    if not isinstance(plan, Plan):
        raise PlanError(f"apply_plan needs a Plan, got {type(plan).__name__}: load JSON with "
                        "Plan.load(path) or Plan.from_dict(data)")
    model = denoiser_of(target)
    if type(model).__name__ == "OptimizedModule" or getattr(model, "_compiled_call_impl", None):
        raise PlanError("the model is already compiled: apply the plan first, then compile "
                        "(applied = apply_plan(pipe, plan); pipe.transformer = "
                        "torch.compile(pipe.transformer))")
    check_plan_fits(model, plan)
    registry = getattr(model, "_diffusers_hook", None)
    if registry is not None and registry.get_hook(CLOCK_HOOK) is not None:
        raise PlanError("a plan is already applied to this model; remove() it first")
    return AppliedPlan(target, model, plan)
