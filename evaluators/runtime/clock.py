"""The step clock: which denoising step a forward call belongs to, and when a generation starts.

A plan is indexed by step, but a model only sees its inputs. A hook on the denoiser's forward reads
the timestep: the first call, or a timestep that does not fall below the previous one, starts a new
generation (every technique's cache is cleared); otherwise the step advances by one. Where the
timestep cannot be read (tensors on the `meta` device), calls are counted and wrap after the
plan's last step. One forward per step is assumed, as with DDIM, DDPM, DPM-Solver and the
pipelines edgediff supports (CFG halves travel in one batch, or one call per half at the same
timestep where the family says so).

A plan fits a generation of exactly its steps: a new generation that starts before the previous
one reached the plan's last step (the pipeline ran fewer steps than the plan holds), and a second
call at the same timestep (a second-order scheduler such as Heun's) are refused in one line
instead of running the plan's steps out of place. Checks that need the call's inputs run at the
first call of each generation (`StepClockHook(on_start=...)`, `evaluators.runtime.fit`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from diffusers.hooks import ModelHook

from evaluators.plan import PlanError


class RunState:
    """Where the current generation stands; shared by every hook of one applied plan.

    Attributes:
        num_steps: the plan's number of inference steps.
        step: the current step (-1 before the first forward).
        manual: while True the clock does not move; the driver picks steps with `set_step`.
        frozen: while True the clock does not move and techniques do not write their caches
            (trial forwards of a calibration, e.g. the DiTFastAttn greedy search).
        generations: how many generations have started since the plan was applied.
        same_step_repeats: a call at the timestep of the last one is that step's other CFG half
            (pipelines that call the denoiser once per half: Qwen-Image, Wan).
    """

    def __init__(self, num_steps: int) -> None:
        self.num_steps = num_steps
        self.step = -1
        self.manual = False
        self.frozen = False
        self.generations = 0
        self.same_step_repeats = False  # a call at the same timestep is the same step
        self._last_timestep: float | None = None
        self._on_reset: list[Callable[[], None]] = []
        self._on_step: list[Callable[[int], None]] = []

    def subscribe(self, on_step: Callable[[int], None] | None = None,
                  on_reset: Callable[[], None] | None = None) -> None:
        if on_step is not None:
            self._on_step.append(on_step)
        if on_reset is not None:
            self._on_reset.append(on_reset)

    def reset(self) -> None:
        """Forget the current generation: the next forward is step 0 with empty caches."""
        self.step = -1
        self._last_timestep = None
        for fn in self._on_reset:
            fn()

    def abandon(self) -> None:
        """Give up the current generation (it failed, or was refused): the next call is step 0
        of a new one, with no check that this one was complete."""
        self.step = -1
        self._last_timestep = None

    def set_step(self, step: int) -> None:
        """Move to `step` explicitly (for drivers that run steps themselves)."""
        if not 0 <= step < self.num_steps:
            raise PlanError(f"step {step} is outside the plan's 0..{self.num_steps - 1}")
        self.step = step
        for fn in self._on_step:
            fn(step)

    def tick(self, timestep: float | None) -> bool:
        """Called before every denoiser forward; returns whether a new generation started."""
        if self.manual or self.frozen:
            return False
        last = self._last_timestep
        if self.same_step_repeats and self.step >= 0 and timestep is not None \
                and timestep == last:
            return False  # the other CFG half of this step (Qwen-Image, Wan: one call per half)
        new_generation = self.step < 0 or (
            timestep is not None and last is not None and timestep >= last)
        if new_generation and self.step >= 0 and self.step + 1 < self.num_steps:
            self._refuse_short(timestep, last)
        if not new_generation and self.step + 1 >= self.num_steps:
            if timestep is not None:
                raise PlanError(
                    f"the model ran more than the plan's {self.num_steps} steps in one generation; "
                    f"call the pipeline with num_inference_steps={self.num_steps}")
            new_generation = True  # meta tensors: count calls and wrap
        if new_generation:
            self.reset()
            self.generations += 1
        self._last_timestep = timestep
        self.set_step(0 if new_generation else self.step + 1)
        return new_generation

    def _refuse_short(self, timestep: float | None, last: float | None) -> None:
        """A generation ended (or repeated a timestep) before the plan's last step."""
        done, n = self.step + 1, self.num_steps
        self.abandon()
        if timestep is not None and timestep == last:
            raise PlanError(
                f"the denoiser was called twice at timestep {timestep:g} in step {done} of the "
                f"plan's {n}: a second-order scheduler (Heun's) makes two calls per step and "
                "plans hold one; sample with a first-order scheduler (Euler, DDIM, DPM-Solver++)")
        raise PlanError(
            f"a generation ran {done} of the plan's {n} steps before the next one started: plans "
            f"fit generations of exactly their steps; call the pipeline with "
            f"num_inference_steps={n} or search a plan at {done} steps")


def _timestep_value(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        # Under torch.compile reading the value is a host sync and a graph break (Tensor.item):
        # count calls instead, as on meta.
        if value.device.type == "meta" or value.numel() == 0 or torch.compiler.is_compiling():
            return None
        return float(value.flatten()[0])
    if isinstance(value, (int, float)):
        return float(value)
    return None


class StepClockHook(ModelHook):
    """Advances a RunState from the `timestep` argument of the denoiser's forward."""

    def __init__(self, state: RunState, forward: Callable[..., Any],
                 on_start: Callable[[tuple[Any, ...], dict[str, Any]], None] | None = None) -> None:
        super().__init__()
        self.state = state
        self.on_start = on_start  # checks of a generation's first call (`runtime.fit`)
        self._in_call = False
        names = list(inspect.signature(forward).parameters)
        self._position = names.index("timestep") if "timestep" in names else None

    def pre_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        value = kwargs.get("timestep")
        if value is None and self._position is not None and len(args) > self._position:
            value = args[self._position]
        if self._in_call:  # the previous call raised before returning: that generation is over
            self.state.abandon()
        started = self.state.tick(_timestep_value(value))
        if started and self.on_start is not None and not torch.compiler.is_compiling():
            try:
                self.on_start(args, kwargs)
            except BaseException:
                self.state.abandon()
                raise
        self._in_call = True
        return args, kwargs

    def post_forward(self, module: torch.nn.Module, output: Any) -> Any:
        self._in_call = False
        return output
