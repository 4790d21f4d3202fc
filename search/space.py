"""The Optuna search spaces: a few categorical parameters per model that build one validated plan.

A multi-objective sampler (NSGA-II, TPE, GP) learns best from a small, flat, structured space:
every trial draws the same parameters (so NSGA-II's crossover and TPE's multivariate model see
all of them), each parameter has a handful of meaningful choices, and a point builds exactly one
plan. Parameters a point does not use (the window when no layer uses `wars`, the branch when the
interval is 1, ...) are ignored, and the plan is built in a canonical form, so points that do the
same thing give the same plan and the same content hash (the store evaluates them once).

Transformers (DiTFastAttn), for T reference steps, N tokens and L self-attention layers:

- `steps`: T and about 0.8T, 0.6T, 0.4T (rounded half up, distinct, at least 4);
- `window`: N/16, N/8, N/4 tokens on each side of the query (at least 1; N/8 is the published
  128 of DiT-XL/2-512's 1024 tokens); used only when some cell uses `wars`, else the base
  plan's window is kept;
- `m_{l}_{s}` for every layer l and segment s: one of `full`, `full+asc`, `wars`, `wars+asc`,
  `ast` (the CFG-sharing ones only when guidance > 1). Step 0 is always `full`; steps
  1..steps-1 are split into 4 contiguous segments of near-equal length and the cell's method
  applies to every step of its segment, except `ast`, which alternates inside the segment:
  reuse at the segment's 1st, 3rd, ... steps and `full` at the others (a whole segment of `ast`
  would reuse one output for many steps). When the step before the segment is itself a reuse,
  the alternation starts with `full`, so every `ast` step follows a computed step; every `wars`
  step has step 0 (full) before it, so its residual always exists.

U-Nets (DeepCache, step count, Kim et al.'s depth-skip and gamma spacing):

- `steps`: as above; `branch`: 0..num_branches-1 (DeepCache's `cache_branch_id` numbering);
- `interval`: 1, 2, 3, 4, 5, 6, 8, 10 (1 = DeepCache off; intervals above the smallest step
  count are left out);
- `schedule`: `uniform` or `nonuniform` (ceil(steps / interval) full steps placed by DeepCache's
  power law, starting power 1.4 as in the DeepCache README's Stable Diffusion example);
- `center`: the non-uniform center as a share of the steps, 0.0 (the reference LDM-4-G code
  places full steps from step 0), 0.3 (the README's center 15 of 50 steps) or 0.5. Where the power
  law cannot place the required count, or places exactly the uniform steps, the plan is uniform;
- `drop_levels`: 0 (off) or 1 (the deepest resolution level never runs). With both, a branch at
  or below the depth-skip's last kept skip caches nothing (a partial step would compute every
  kept module), so the plan has no DeepCache section;
- `spacing`: `uniform`, `gamma1.5` or `gamma2.0` (timesteps at ((T - i) / T) ** gamma; gamma
  choices only for a DDIM base plan, the only scheduler gamma spacing supports).

`params_of(plan)` maps any plan of the model to the nearest point (for `study.enqueue_trial` of
the baseline's plans); `suggest(FixedTrial(params_of(p)))` gives back p's content hash whenever p
is in the space. Sizes for the shipped models are in docs/SEARCH_SPACE.md.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import optuna

from evaluators.plan import SHARES_CFG, WINDOW_METHODS, DeepCache, Plan, PlanError

SEGMENTS = 4
STEP_SHARES = (1.0, 0.8, 0.6, 0.4)
MIN_STEPS = 4
WINDOW_DIVISORS = (16, 8, 4)  # window = N / divisor tokens on each side
SPACE_METHODS = ("full", "full+asc", "wars", "wars+asc", "ast")  # ties in params_of go left
INTERVALS = (1, 2, 3, 4, 5, 6, 8, 10)
CENTERS = (0.0, 0.3, 0.5)
NONUNIFORM_POWER = 1.4
DROP_LEVELS = (0, 1)
GAMMAS = (1.5, 2.0)


# --- facts --------------------------------------------------------------------------------------

def model_facts(denoiser: Any) -> dict[str, Any]:
    """JSON-able facts a space needs, read from a loaded (or meta) denoiser:
    {"kind": "transformer", "num_layers", "num_tokens"} or
    {"kind": "unet", "num_branches", "max_level", "skip_levels"} (resolution level of each skip)."""
    if hasattr(denoiser, "transformer_blocks"):
        from evaluators.runtime.attention import self_attention_layers

        config = denoiser.config
        size = config.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        patch = int(config.patch_size or 1)
        return {"kind": "transformer", "num_layers": len(self_attention_layers(denoiser)),
                "num_tokens": (int(h) // patch) * (int(w) // patch)}
    if hasattr(denoiser, "down_blocks"):
        from evaluators.runtime.unet import unet_layout

        layout = unet_layout(denoiser)
        return {"kind": "unet", "num_branches": layout.num_branches, "max_level": layout.max_level,
                "skip_levels": [s.level for s in layout.skips]}
    raise PlanError(f"{type(denoiser).__name__} is neither a transformer with transformer_blocks "
                    "nor a U-Net with down_blocks: no search space for it")


def skip_levels(facts: Mapping[str, Any]) -> list[int]:
    """The resolution level of each skip branch (from the facts, or derived for a standard
    diffusers U-Net: conv_in, then per level its resnets and a downsampler)."""
    if "skip_levels" in facts:
        return [int(v) for v in facts["skip_levels"]]
    levels, branches = int(facts["max_level"]) + 1, int(facts["num_branches"])
    per_level, rest = divmod(branches - 1 - (levels - 1), levels)
    if rest or per_level < 1:
        raise ValueError(f"cannot derive the skip levels of a U-Net with {branches} branches and "
                         f"{levels} levels; pass the facts from search.space.model_facts(unet)")
    out = [0]
    for level in range(levels):
        out += [level] * per_level + ([level + 1] if level < levels - 1 else [])
    return out


# --- shared helpers -----------------------------------------------------------------------------

def step_choices(total: int) -> tuple[int, ...]:
    """T, ~0.8T, ~0.6T, ~0.4T (rounded half up, distinct, >= MIN_STEPS; T itself always)."""
    out = [total]
    for share in STEP_SHARES[1:]:
        n = math.floor(total * share + 0.5)
        if n >= MIN_STEPS and n not in out:
            out.append(n)
    return tuple(out)


def segment_ranges(num_steps: int, count: int = SEGMENTS) -> list[range]:
    """Steps 1..num_steps-1 split into `count` contiguous segments of near-equal length."""
    n = num_steps - 1
    starts = [1 + k * n // count for k in range(count + 1)]
    return [range(starts[k], starts[k + 1]) for k in range(count)]


def segment_methods(method: str, length: int, after_reuse: bool) -> list[str]:
    """One cell's methods over its segment; `ast` alternates with `full`, never twice in a row
    (`after_reuse`: the step before the segment is itself an `ast` step)."""
    if method != "ast":
        return [method] * length
    out: list[str] = []
    for _ in range(length):
        previous_reuses = out[-1] == "ast" if out else after_reuse
        out.append("full" if previous_reuses else "ast")
    return out


def attention_row(cells: Sequence[str], num_steps: int) -> tuple[str, ...]:
    """One layer's methods for every step from its per-segment cells (step 0 is `full`)."""
    row = ["full"]
    for method, seg in zip(cells, segment_ranges(num_steps, len(cells)), strict=True):
        row += segment_methods(method, len(seg), row[-1] == "ast")
    return tuple(row)


def _nearest(choices: Sequence[Any], value: float) -> Any:
    return min(choices, key=lambda c: (abs(c - value), -c))


def _plan_body(base: Plan, steps: int) -> dict[str, Any]:
    body = base.to_dict()
    for key in ("notes", "deepcache", "depth_skip", "attention"):
        body.pop(key, None)
    body["sampling"]["num_inference_steps"] = steps
    return body


# --- the spaces ---------------------------------------------------------------------------------

class SearchSpace(ABC):
    """A flat categorical space over one model's plans; subclasses define choices and build."""

    kind: str

    def __init__(self, facts: Mapping[str, Any], base: Plan) -> None:
        self.facts = dict(facts)
        self.base = base
        self.steps = step_choices(base.num_steps)

    @abstractmethod
    def choices(self) -> dict[str, tuple[Any, ...]]:
        """Every parameter and its choices, in the order trials draw them."""

    @abstractmethod
    def build(self, params: Mapping[str, Any]) -> Plan:
        """The canonical, validated plan of one point."""

    @abstractmethod
    def params_of(self, plan: Plan) -> dict[str, Any]:
        """The nearest point of the space to any plan of this model."""

    def suggest(self, trial: optuna.trial.BaseTrial) -> Plan:
        """Draw every parameter with `trial.suggest_categorical` and build the plan."""
        params = {name: trial.suggest_categorical(name, list(options))
                  for name, options in self.choices().items()}
        return replace(self.build(params), notes={"search": "optuna", "params": params})

    def size(self) -> int:
        """Number of points (the product of the choice counts; plans can coincide)."""
        return math.prod(len(options) for options in self.choices().values())

    def describe(self) -> list[tuple[str, str]]:
        """(parameter, choices) rows for docs and the CLI."""
        return [(name, ", ".join(map(str, options))) for name, options in self.choices().items()]


class TransformerSpace(SearchSpace):
    """DiTFastAttn plans: step count, window, and one method per (layer, step segment)."""

    kind = "transformer"

    def __init__(self, facts: Mapping[str, Any], base: Plan) -> None:
        super().__init__(facts, base)
        self.num_layers = int(facts["num_layers"])
        tokens = int(facts["num_tokens"])
        self.windows = tuple(sorted({max(1, tokens // d) for d in WINDOW_DIVISORS}))
        shares_cfg = base.sampling.guidance_scale > 1.0
        self.methods = tuple(m for m in SPACE_METHODS if shares_cfg or m not in SHARES_CFG)
        att = base.attention
        self.base_window = (att.window_left, att.window_right) if att else (32, 32)

    def cells(self) -> list[str]:
        return [f"m_{layer}_{seg}" for layer in range(self.num_layers) for seg in range(SEGMENTS)]

    def choices(self) -> dict[str, tuple[Any, ...]]:
        out: dict[str, tuple[Any, ...]] = {"steps": self.steps, "window": self.windows}
        out.update({name: self.methods for name in self.cells()})
        return out

    def describe(self) -> list[tuple[str, str]]:
        rows = super().describe()[:2]
        return rows + [(f"m_{{layer}}_{{segment}} ({self.num_layers} x {SEGMENTS} = "
                        f"{self.num_layers * SEGMENTS} parameters)", ", ".join(self.methods))]

    def build(self, params: Mapping[str, Any]) -> Plan:
        steps = int(params["steps"])
        rows = [attention_row([params[f"m_{layer}_{seg}"] for seg in range(SEGMENTS)], steps)
                for layer in range(self.num_layers)]
        uses_window = any(m in WINDOW_METHODS for row in rows for m in row)
        left, right = (params["window"],) * 2 if uses_window else self.base_window
        body = _plan_body(self.base, steps)
        body["attention"] = {"window": {"left": int(left), "right": int(right)},
                             "methods": [list(row) for row in rows]}
        return Plan.from_dict(body)

    def params_of(self, plan: Plan) -> dict[str, Any]:
        steps = _nearest(self.steps, plan.num_steps)
        att = plan.attention
        window = _nearest(self.windows, att.window_left if att else self.base_window[0])
        params: dict[str, Any] = {"steps": steps, "window": window}
        for layer in range(self.num_layers):
            source = att.methods[layer] if att and layer < att.num_layers else ("full",) * plan.num_steps
            row = _resample(source, steps)
            previous = "full"
            for seg_index, seg in enumerate(segment_ranges(steps)):
                target = [row[t] for t in seg]
                best = max(self.methods, key=lambda m: (_agreement(m, target, previous),
                                                        -self.methods.index(m)))
                params[f"m_{layer}_{seg_index}"] = best
                if target:
                    previous = segment_methods(best, len(target), previous == "ast")[-1]
        return params


def _resample(row: Sequence[str], steps: int) -> list[str]:
    """A layer's methods moved onto `steps` steps by relative position (`asc` read as
    `full+asc`); step 0 stays step 0."""
    src = len(row)
    out = ["full"]
    for t in range(1, steps):
        s = min(src - 1, max(1, math.floor(t * src / steps + 0.5))) if src > 1 else 0
        out.append("full+asc" if row[s] == "asc" else row[s])
    return out


def _agreement(method: str, target: Sequence[str], previous: str) -> int:
    cell = segment_methods(method, len(target), previous == "ast")
    return sum(a == b for a, b in zip(cell, target, strict=True))


class UNetSpace(SearchSpace):
    """DeepCache + step count + depth-skip + timestep spacing plans for a U-Net."""

    kind = "unet"

    def __init__(self, facts: Mapping[str, Any], base: Plan) -> None:
        super().__init__(facts, base)
        self.levels = skip_levels(facts)
        self.num_branches = len(self.levels)
        self.max_level = max(self.levels)
        self.intervals = tuple(n for n in INTERVALS if n <= min(self.steps))
        self.drops = tuple(d for d in DROP_LEVELS if d <= self.max_level)
        gammas = GAMMAS if base.sampling.scheduler == "DDIMScheduler" else ()
        self.spacings = ("uniform",) + tuple(f"gamma{g}" for g in gammas)

    def choices(self) -> dict[str, tuple[Any, ...]]:
        return {"steps": self.steps, "branch": tuple(range(self.num_branches)),
                "interval": self.intervals, "schedule": ("uniform", "nonuniform"),
                "center": CENTERS, "drop_levels": self.drops, "spacing": self.spacings}

    def last_kept_skip(self, drop_levels: int) -> int:
        """The depth-skip's last kept skip d (as `UNetLayout.depth_for`)."""
        top = self.max_level - drop_levels
        return max(i for i, level in enumerate(self.levels) if level <= top)

    def build(self, params: Mapping[str, Any]) -> Plan:
        steps, branch, interval = int(params["steps"]), int(params["branch"]), int(params["interval"])
        drop = int(params["drop_levels"])
        body = _plan_body(self.base, steps)
        sampling = body["sampling"]
        sampling.pop("gamma", None)
        sampling["spacing"] = "uniform"
        if params["spacing"] != "uniform":
            sampling.update(spacing="gamma", gamma=float(params["spacing"][len("gamma"):]))
        if drop:
            body["depth_skip"] = {"drop_levels": drop}
        if interval > 1 and not (drop and branch >= self.last_kept_skip(drop)):
            body["deepcache"] = self._deepcache(steps, branch, interval, params)
        return Plan.from_dict(body)

    @staticmethod
    def _deepcache(steps: int, branch: int, interval: int, params: Mapping[str, Any]) -> dict:
        uniform = {"branch": branch, "interval": interval}
        if params["schedule"] != "nonuniform":
            return uniform
        nonuniform = {**uniform, "schedule": "nonuniform", "power": NONUNIFORM_POWER,
                      "center": min(steps - 1, math.floor(float(params["center"]) * steps + 0.5))}
        try:
            full = DeepCache(branch, interval, "nonuniform", nonuniform["center"],
                             NONUNIFORM_POWER).full_step_indices(steps)
        except PlanError:  # the power law cannot place ceil(steps / interval) full steps
            return uniform
        return uniform if full == tuple(range(0, steps, interval)) else nonuniform

    def params_of(self, plan: Plan) -> dict[str, Any]:
        steps = _nearest(self.steps, plan.num_steps)
        params: dict[str, Any] = {"steps": steps, "branch": 0, "interval": 1, "schedule": "uniform",
                                  "center": CENTERS[0], "drop_levels": 0, "spacing": "uniform"}
        dc = plan.deepcache
        if dc is not None:
            params["branch"] = min(max(dc.branch, 0), self.num_branches - 1)
            count = len(dc.full_step_indices(plan.num_steps)) or 1
            interval = dc.interval if dc.schedule != "explicit" else plan.num_steps / count
            params["interval"] = _nearest(self.intervals, interval)
            if dc.schedule == "nonuniform":
                params["schedule"] = "nonuniform"
                params["center"] = _nearest(CENTERS, (dc.center or 0) / plan.num_steps)
        if plan.depth_skip is not None:
            params["drop_levels"] = _nearest(self.drops, plan.depth_skip.drop_levels)
        if plan.sampling.spacing == "gamma" and len(self.spacings) > 1:
            gamma = _nearest(GAMMAS, plan.sampling.gamma or 1.0)
            params["spacing"] = f"gamma{gamma}"
        return params


SPACES: dict[str, type[SearchSpace]] = {"transformer": TransformerSpace, "unet": UNetSpace}


def make_space(facts: Mapping[str, Any], base: Plan) -> SearchSpace:
    """The search space for a model's facts (`model_facts`) around its uncompressed plan `base`
    (model reference, reference step count T, guidance)."""
    kind = facts.get("kind")
    if kind not in SPACES:
        raise ValueError(f"no search space for model kind {kind!r}: use one of {', '.join(SPACES)}")
    return SPACES[kind](facts, base)

