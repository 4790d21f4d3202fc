"""The search methods, registered by name: what `edgediff search --method`, the driver and the
dashboard know of them.

    method = search_method("deepcache-grid")
    strategy = method.strategy_class()(context)     # a `search.strategies.Strategy`

Each method is one `Strategy` subclass in its own module of `search/strategies/` (like Optuna's
`samplers/`), registered here with its help line, the model family it applies to and whether it
is that family's paper baseline. Torch-, Optuna- and Ray-free: the class is imported only when a
search uses it. A new method is one new module and one `register` line below.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

__all__ = ["BASELINE", "SearchMethod", "baseline_for", "register", "search_method", "search_methods"]

BASELINE = "baseline"  # stands for the model family's baseline method


@dataclass(frozen=True)
class SearchMethod:
    """One registered search method.

    Attributes:
        name: the name stored with each candidate it proposes and given to `--method`.
        factory: "module:Class" of its `Strategy`, imported when a search uses it.
        help: one line for `--help` and the dashboard.
        family: the denoiser kind it applies to ("transformer", "unet"), None for any.
        baseline: whether it is its family's paper baseline (what `--method baseline` runs).
    """

    name: str
    factory: str
    help: str
    family: str | None = None
    baseline: bool = False

    def strategy_class(self) -> Any:
        module, _, attr = self.factory.partition(":")
        return getattr(import_module(module), attr)

    def applies_to(self, family: str) -> bool:
        return self.family is None or self.family == family


_METHODS: dict[str, SearchMethod] = {}


def register(method: SearchMethod) -> SearchMethod:
    """Add a method (a name registered twice is a programming error)."""
    if method.name in _METHODS or method.name == BASELINE:
        raise ValueError(f"search method {method.name!r} is registered already")
    _METHODS[method.name] = method
    return method


def search_methods() -> list[SearchMethod]:
    """Every registered method, baselines first, in registration order."""
    return sorted(_METHODS.values(), key=lambda m: not m.baseline)


def search_method(name: str) -> SearchMethod:
    """The method called `name`; KeyError naming the known ones."""
    if name not in _METHODS:
        raise KeyError(f"unknown search method '{name}': choose {', '.join(_METHODS)}")
    return _METHODS[name]


def baseline_for(family: str) -> SearchMethod:
    """The paper baseline of a model family."""
    for method in _METHODS.values():
        if method.baseline and method.applies_to(family):
            return method
    raise KeyError(f"no baseline search method for a {family} model")


register(SearchMethod(
    "greedy", "search.strategies.greedy:GreedyStrategy",
    "the DiTFastAttn greedy, one plan per threshold δ (transformers)",
    family="transformer", baseline=True))
register(SearchMethod(
    "deepcache-grid", "search.strategies.deepcache_grid:DeepCacheGridStrategy",
    "the DeepCache grid of branches x intervals (U-Nets)", family="unet", baseline=True))
register(SearchMethod(
    "library-default", "search.strategies.library_default:LibraryDefaultStrategy",
    "diffusers' caches at their shipped defaults and README sweeps (FLUX, SD3, Qwen-Image, Wan)",
    family="library-cache", baseline=True))
register(SearchMethod(
    "optuna", "search.strategies.optuna_search:OptunaStrategy",
    "Optuna's multi-objective search of MACs and FID (any model)"))


def method_rank(name: str) -> int:
    """Where a method sits in tables, legends and colours: 0 for the baselines (one per family, so
    they never meet in a study), then the other registered methods in order; unregistered names
    ("manual", ...) after them all."""
    others = [m.name for m in _METHODS.values() if not m.baseline]
    if name in _METHODS and _METHODS[name].baseline:
        return 0
    return 1 + others.index(name) if name in others else 1 + len(others)
