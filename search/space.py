"""The Optuna search spaces: a few categorical parameters per model that build one validated plan.

A multi-objective sampler (NSGA-II, TPE, GP) learns best from a small, flat, structured space:
every trial draws the same parameters (so NSGA-II's crossover and TPE's multivariate model see
all of them), each parameter has a handful of meaningful choices, and a point builds exactly one
plan. Parameters a point does not use (the window when no layer uses `wars`, the branch when the
interval is 1, ...) are ignored, and the plan is built in a canonical form, so points that do the
same thing give the same plan and the same content hash (the store evaluates them once).

Every space draws `steps` first: T and about 0.8T, 0.6T, 0.4T (rounded half up, distinct, at
least 4); then the parameter groups its model family lists (`Family.search`), one module each in
`search/params/`, keyed by the plan section it writes, where each documents its parameters:

- transformers (DiTFastAttn): `attention` (`window`, `m_{layer}_{segment}`);
- U-Nets: `deepcache` (`branch`, `interval`, `schedule`, `center`), `depth_skip`
  (`drop_levels`; with both, a branch at or below the depth-skip's last kept skip gives no
  DeepCache section) and `spacing` (`uniform`, `gamma1.5`, `gamma2.0`).

`params_of(plan)` maps any plan of the model to the nearest point (for `study.enqueue_trial` of
the baseline's plans); `suggest(FixedTrial(params_of(p)))` gives back p's content hash whenever p
is in the space. Sizes for the shipped models are in docs/SEARCH_SPACE.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import optuna

from evaluators.plan import Plan, fit_notes
from search.params import GROUPS, ParamGroup, nearest
from search.params.attention import (  # noqa: F401  (the space's vocabulary, re-exported)
    SEGMENTS,
    SPACE_METHODS,
    WINDOW_DIVISORS,
    AttentionParams,
    attention_row,
    segment_methods,
    segment_ranges,
)
from search.params.deepcache import (  # noqa: F401
    CENTERS,
    INTERVALS,
    NONUNIFORM_POWER,
    DeepCacheParams,
    last_kept_skip,
    skip_levels,
)
from search.params.depth_skip import DROP_LEVELS, DepthSkipParams  # noqa: F401
from search.params.spacing import GAMMAS, SpacingParams  # noqa: F401

STEP_SHARES = (1.0, 0.8, 0.6, 0.4)
MIN_STEPS = 4


def model_facts(denoiser: Any) -> dict[str, Any]:
    """JSON-able facts a space needs, read from a loaded (or meta) denoiser by its family
    (`evaluators.families`): {"kind": "transformer", "num_layers", "num_tokens"} or
    {"kind": "unet", "num_branches", "max_level", "skip_levels"} (resolution level of each skip),
    and "groups", the parameter groups the family's space draws (`Family.search`)."""
    from evaluators.families import facts_of

    return facts_of(denoiser).search_facts()


def step_choices(total: int) -> tuple[int, ...]:
    """T, ~0.8T, ~0.6T, ~0.4T (rounded half up, distinct, >= MIN_STEPS; T itself always)."""
    out = [total]
    for share in STEP_SHARES[1:]:
        n = math.floor(total * share + 0.5)
        if n >= MIN_STEPS and n not in out:
            out.append(n)
    return tuple(out)


def _plan_body(base: Plan, steps: int) -> dict[str, Any]:
    body = base.to_dict()
    for key in ("notes", *base.section_names):
        body.pop(key, None)
    body["sampling"]["num_inference_steps"] = steps
    return body


class SearchSpace:
    """A flat categorical space over one model's plans: `steps`, then each parameter group."""

    kind: str = "generic"
    group_names: tuple[str, ...] = ()

    def __init__(self, facts: Mapping[str, Any], base: Plan,
                 groups: Sequence[str] | None = None) -> None:
        self.facts = dict(facts)
        self.base = base
        self.steps = step_choices(base.num_steps)
        names = tuple(groups) if groups else self.group_names
        unknown = [name for name in names if name not in GROUPS]
        if unknown:
            raise ValueError(f"no search parameters for plan section(s) {unknown}: add a module "
                             f"to search/params/ (known: {', '.join(GROUPS)})")
        self.groups: dict[str, ParamGroup] = {
            name: GROUPS[name](self.facts, base, self.steps) for name in names}

    def choices(self) -> dict[str, tuple[Any, ...]]:
        """Every parameter and its choices, in the order trials draw them."""
        out: dict[str, tuple[Any, ...]] = {"steps": self.steps}
        for group in self.groups.values():
            out.update(group.choices())
        return out

    def build(self, params: Mapping[str, Any]) -> Plan:
        """The canonical, validated plan of one point."""
        steps = int(params["steps"])
        body = _plan_body(self.base, steps)
        for group in self.groups.values():
            group.build(params, body, steps)
        return Plan.from_dict(body)

    def params_of(self, plan: Plan) -> dict[str, Any]:
        """The nearest point of the space to any plan of this model."""
        steps = nearest(self.steps, plan.num_steps)
        params: dict[str, Any] = {"steps": steps}
        for group in self.groups.values():
            params.update(group.params_of(plan, steps))
        return params

    def suggest(self, trial: optuna.trial.BaseTrial) -> Plan:
        """Draw every parameter with `trial.suggest_categorical` and build the plan."""
        params = {name: trial.suggest_categorical(name, list(options))
                  for name, options in self.choices().items()}
        return replace(self.build(params),
                       notes={**fit_notes(self.base), "search": "optuna", "params": params})

    def size(self) -> int:
        """Number of points (the product of the choice counts; plans can coincide)."""
        return math.prod(len(options) for options in self.choices().values())

    def describe(self) -> list[tuple[str, str]]:
        """(parameter, choices) rows for docs and the CLI."""
        rows = [("steps", ", ".join(map(str, self.steps)))]
        for group in self.groups.values():
            rows += group.describe()
        return rows


class TransformerSpace(SearchSpace):
    """DiTFastAttn plans: step count, window, and one method per (layer, step segment)."""

    kind = "transformer"
    group_names = ("attention",)

    @property
    def _attention(self) -> AttentionParams:
        return self.groups["attention"]  # type: ignore[return-value]

    num_layers = property(lambda self: self._attention.num_layers)
    windows = property(lambda self: self._attention.windows)
    methods = property(lambda self: self._attention.methods)

    def cells(self) -> list[str]:
        return self._attention.cells()


class UNetSpace(SearchSpace):
    """DeepCache + step count + depth-skip + timestep spacing plans for a U-Net."""

    kind = "unet"
    group_names = ("deepcache", "depth_skip", "spacing")

    def __init__(self, facts: Mapping[str, Any], base: Plan,
                 groups: Sequence[str] | None = None) -> None:
        super().__init__(facts, base, groups)
        self.levels = skip_levels(facts)
        self.num_branches = len(self.levels)
        self.max_level = max(self.levels)

    intervals = property(lambda self: self.groups["deepcache"].intervals)
    drops = property(lambda self: self.groups["depth_skip"].drops)
    spacings = property(lambda self: self.groups["spacing"].spacings)

    def last_kept_skip(self, drop_levels: int) -> int:
        """The depth-skip's last kept skip d (as `UNetLayout.depth_for`)."""
        return last_kept_skip(self.levels, drop_levels)


SPACES: dict[str, type[SearchSpace]] = {"transformer": TransformerSpace, "unet": UNetSpace}


def make_space(facts: Mapping[str, Any], base: Plan) -> SearchSpace:
    """The search space for a model's facts (`model_facts`) around its uncompressed plan `base`
    (model reference, reference step count T, guidance): the groups the facts name, or the
    kind's usual groups."""
    kind = facts.get("kind")
    if kind not in SPACES and not facts.get("groups"):
        raise ValueError(f"no search space for model kind {kind!r}: use one of {', '.join(SPACES)}")
    return SPACES.get(kind, SearchSpace)(facts, base, facts.get("groups"))
