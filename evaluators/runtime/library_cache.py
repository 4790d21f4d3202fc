"""diffusers' own caches (FirstBlockCache, TaylorSeer, MagCache, FasterCache, Pyramid Attention
Broadcast) installed from a plan and removed exactly.

The cache itself is always the installed diffusers code: `model.enable_cache(config)` where the
model has `CacheMixin`, else the matching `diffusers.hooks.apply_*` function (SD3 has no
`enable_cache`, but its blocks are registered with diffusers' block registry). edgediff adds
only what a plan needs around it:

- a cache context on every denoiser call that the pipeline did not wrap in
  `transformer.cache_context(...)` itself (FirstBlockCache and TaylorSeer keep their state per
  context and refuse a call without one);
- the current timestep on the 0..1000 scale for the caches that read one (Pyramid Attention
  Broadcast, FasterCache), taken from the denoiser's own `timestep` argument;
- a reset of every stateful cache hook when the step clock starts a new generation;
- exact removal: `disable_cache()` / `remove_hook`, then the attributes the hook registry left on
  each module (`_diffusers_hook`, the instance `forward`, `_cache_config`) are deleted where they
  did not exist before, so every module's `__dict__` is as it was.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.hooks.hooks import CacheContext, StateManager

from evaluators.plan import PlanError
from evaluators.runtime.clock import RunState
from evaluators.runtime.hooks import Installation

CONTEXT_HOOK = "edgediff.cache_context"
DIFFUSERS_VERSION = importlib.metadata.version("diffusers")
_TRACKED_ATTRS = ("_diffusers_hook", "forward", "_cache_config")

# plan section -> (diffusers config class, apply function, hook names it registers)
LIBRARY_CACHES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "first_block_cache": ("FirstBlockCacheConfig", "apply_first_block_cache",
                          ("fbc_leader_block_hook", "fbc_block_hook")),
    "taylorseer_cache": ("TaylorSeerCacheConfig", "apply_taylorseer_cache", ("taylorseer_cache",)),
    "mag_cache": ("MagCacheConfig", "apply_mag_cache",
                  ("mag_cache_leader_block_hook", "mag_cache_block_hook")),
    "faster_cache": ("FasterCacheConfig", "apply_faster_cache",
                     ("faster_cache_denoiser", "faster_cache_block")),
    "pyramid_attention_broadcast": ("PyramidAttentionBroadcastConfig",
                                    "apply_pyramid_attention_broadcast",
                                    ("pyramid_attention_broadcast",)),
}


def library_config(section: str, **kwargs: Any) -> Any:
    """The installed diffusers config object of a plan section, or a one-line PlanError naming the
    diffusers version when this version lacks it or refuses a knob."""
    import diffusers.hooks as hooks

    class_name = LIBRARY_CACHES[section][0]
    cls = getattr(hooks, class_name, None)
    if cls is None:
        raise PlanError(f"plan.{section}: the installed diffusers {DIFFUSERS_VERSION} has no "
                        f"{class_name}; install diffusers >= 0.36 or drop the section")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise PlanError(f"plan.{section}: diffusers {DIFFUSERS_VERSION} refuses these values "
                        f"({first}); see docs/PLANS.md") from err


class TimestepTracker:
    """The denoiser's current timestep on the 0..1000 scale (the caches' timestep ranges)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.value: float = 1000.0

    def __call__(self) -> float:
        return self.value


class CacheContextHook(ModelHook):
    """Outermost hook on the denoiser: records the timestep and, where the pipeline did not set
    a cache context for this call, sets one for the call's duration."""

    def __init__(self, managers: list[StateManager], tracker: TimestepTracker,
                 state: RunState) -> None:
        super().__init__()
        self.managers, self.tracker, self.state = managers, tracker, state
        self._owned = False
        self.after: Any = None  # called after every denoiser call (MagCache's calibration)

    def pre_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        t = kwargs.get("timestep")
        if isinstance(t, torch.Tensor) and t.device.type != "meta" and t.numel():
            self.tracker.value = float(t.flatten()[0]) * self.tracker.scale
        elif isinstance(t, (int, float)):
            self.tracker.value = float(t) * self.tracker.scale
        self._owned = bool(self.managers) and all(m._context is None for m in self.managers)
        if self._owned:
            context = CacheContext("edgediff", step_index=max(self.state.step, 0),
                                   num_inference_steps=self.state.num_steps)
            for manager in self.managers:
                manager.set_context(context)
        return args, kwargs

    def post_forward(self, module: torch.nn.Module, output: Any) -> Any:
        if self.after is not None:
            self.after()
        if self._owned:
            for manager in self.managers:
                manager.set_context(None)
            self._owned = False
        return output


def _snapshot(model: torch.nn.Module) -> dict[int, set[str]]:
    return {id(m): {a for a in _TRACKED_ATTRS if a in m.__dict__} for m in model.modules()}


def _state_managers(model: torch.nn.Module) -> list[StateManager]:
    managers: list[StateManager] = []
    for module in model.modules():
        registry = module.__dict__.get("_diffusers_hook")
        if registry is None:
            continue
        for hook in registry.hooks.values():
            managers.extend(v for v in vars(hook).values()
                            if isinstance(v, StateManager) and v not in managers)
    return managers


class LibraryCache:
    """One diffusers cache installed on a denoiser; `remove()` restores the model exactly."""

    def __init__(self, model: torch.nn.Module, section: str, config: Any, state: RunState,
                 tracker: TimestepTracker) -> None:
        if getattr(model, "_cache_config", None) is not None:
            raise PlanError(f"a diffusers cache ({type(model._cache_config).__name__}) is already "
                            "enabled on this model; call disable_cache() first")
        self.model, self.section, self.config = model, section, config
        self.tracker = tracker
        self._before = _snapshot(model)
        self._hook_names = LIBRARY_CACHES[section][2]
        if hasattr(model, "enable_cache"):
            model.enable_cache(config)
        else:
            import diffusers.hooks as hooks

            getattr(hooks, LIBRARY_CACHES[section][1])(model, config)
            HookRegistry.check_if_exists_or_initialize(model).invalidate_child_registries_cache()
        self.managers = _state_managers(model)
        self.hook = CacheContextHook(self.managers, self.tracker, state)
        HookRegistry.check_if_exists_or_initialize(model).register_hook(self.hook, CONTEXT_HOOK)
        state.subscribe(on_reset=self.reset)

    def reset(self) -> None:
        """Clear every stateful cache hook (a new generation starts)."""
        registry = self.model.__dict__.get("_diffusers_hook")
        if registry is not None:
            registry.reset_stateful_hooks(recurse=True)

    def remove(self) -> None:
        self.reset()
        registry = HookRegistry.check_if_exists_or_initialize(self.model)
        registry.remove_hook(CONTEXT_HOOK, recurse=False)
        if hasattr(self.model, "disable_cache"):
            self.model.disable_cache()
        else:
            for name in self._hook_names:
                registry.remove_hook(name, recurse=True)
        for module in self.model.modules():
            before = self._before.get(id(module), set())
            registry = module.__dict__.get("_diffusers_hook")
            still_hooked = registry is not None and bool(registry.hooks)
            for attr in _TRACKED_ATTRS:
                if attr in module.__dict__ and attr not in before:
                    if still_hooked and attr != "_cache_config":
                        continue  # another installation's hooks still live there
                    del module.__dict__[attr]


def install_section(model: torch.nn.Module, section: Any, num_steps: int, state: RunState,
                    installation: Installation) -> LibraryCache:
    """Enable one diffusers-cache plan section on `model`; removed with `installation`."""
    from evaluators.techniques._library import CACHE_FAMILIES

    model_class = type(model).__name__
    section.check_model(model_class)
    tracker = TimestepTracker(CACHE_FAMILIES[model_class])
    config = library_config(section.section,
                            **section.library_kwargs(model_class, num_steps, tracker))
    cache = LibraryCache(model, section.section, config, state, tracker)
    installation.add_undo(cache.remove)
    return cache


def install_library_cache(model: torch.nn.Module, plan: Any, state: RunState,
                          installation: Installation) -> LibraryCache | None:
    """The installer of every diffusers-cache section: a plan holds at most one of them."""
    held = [s for s in (plan.section(name) for name in LIBRARY_CACHES) if s is not None]
    if len(held) > 1:
        names = " and ".join(s.section for s in held)
        raise PlanError(f"plan: {names} in one plan; diffusers runs one cache at a time on a "
                        "model, keep one of them")
    if not held:
        return None
    return install_section(model, held[0], plan.num_steps, state, installation)
