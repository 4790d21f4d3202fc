"""The plan: a versioned JSON document that says how to run one model cheaper.

Defined once here and read by everything else (the runtime, the store, the dashboard). Torch-free,
so the store and the CLI can validate plans without loading a model. A plan holds:

- `model`: the model it was found for (name, diffusers class, fingerprint of its config);
- `sampling`: scheduler, number of inference steps, guidance scale, and the timestep placement
  (`uniform`, the scheduler's own spacing, or `gamma`, Kim et al.'s (i/N)^gamma placement);
- for U-Nets, `deepcache` (branch, interval, schedule) and/or `depth_skip` (deepest levels dropped);
- for transformers, `attention`: one DiTFastAttn method per (self-attention layer, step) and the
  window of `wars`.

`Plan.from_dict` checks everything that does not need the model (names, ranges, step 0 full, `asc`
needs guidance); `evaluators.runtime.check_plan_fits` checks the rest against a loaded model.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evaluators.errors import EvaluatorError

PLAN_FORMAT = "edgediff-plan"
PLAN_VERSION = 1

# DiTFastAttn methods, most to least compressed is: ast, wars+asc, wars, full+asc (asc), full.
ATTENTION_METHODS = ("full", "wars", "ast", "asc", "full+asc", "wars+asc")
SHARES_CFG = frozenset({"asc", "full+asc", "wars+asc"})  # compute one CFG half, copy it
FULL_METHODS = frozenset({"full", "asc", "full+asc"})  # full attention: may refresh the residual
WINDOW_METHODS = frozenset({"wars", "wars+asc"})

Spacing = Literal["uniform", "gamma"]
CacheSchedule = Literal["uniform", "nonuniform", "explicit"]

# Config keys that say nothing about the architecture or the weights' shapes.
_BOOKKEEPING_KEYS = {"_name_or_path", "_diffusers_version", "_use_default_values", "_commit_hash"}


class PlanError(EvaluatorError):
    """A plan is malformed or does not fit the model; the message names the field and the fix."""


def config_fingerprint(model_class: str, config: Mapping[str, Any]) -> str:
    """A short hash of a model's class and architecture config (bookkeeping keys left out)."""
    body = {k: v for k, v in dict(config).items() if k not in _BOOKKEEPING_KEYS}
    text = json.dumps({"class": model_class, "config": body}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ModelRef:
    """The model a plan was found for.

    Attributes:
        name: registry name, local path or hub id (`digits-dit`, `facebook/DiT-XL-2-256`).
        model_class: the diffusers class name (`DiTTransformer2DModel`, `UNet2DModel`, ...).
        fingerprint: `config_fingerprint` of the model; a plan applied to a model with a different
            fingerprint is rejected. None skips the check (hand-written plans).
    """

    name: str
    model_class: str
    fingerprint: str | None = None


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


@dataclass(frozen=True)
class DeepCache:
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
                raise _fail("deepcache", f"the power law around center {self.center} gives "
                            f"{len(steps)} full steps, not ceil({num_steps}/{self.interval}) = "
                            f"{count}", "move center or raise power, or list explicit full_steps")
            return steps
        return tuple(range(0, num_steps, self.interval))


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


@dataclass(frozen=True)
class DepthSkip:
    """Depth-skip pruning of a U-Net (Kim et al., ACCV 2024): never run the deepest levels.

    Attributes:
        drop_levels: how many of the deepest resolution levels to drop. The kept encoder ends at
            the last skip output of the shallower levels (skip d, in DeepCache's numbering: d = 8
            for one level of the Stable Diffusion U-Net, the released code's `depth 9`); the mid
            block and the decoder layers that consumed the dropped skips never run, and the first
            kept decoder layer gets zeros in place of the deep path, concatenated with skip d.
    """

    drop_levels: int


@dataclass(frozen=True)
class AttentionPlan:
    """DiTFastAttn on a diffusion transformer (Yuan et al., NeurIPS 2024).

    Attributes:
        methods: `methods[layer][step]` for every self-attention layer and step, one of
            `full`, `wars` (window attention + the residual cached at the last full step),
            `ast` (reuse the layer's output of the previous step), `asc` / `full+asc` (full
            attention on one CFG half, copied to the other), `wars+asc`.
        window_left, window_right: query i attends keys i - left .. i + right of the flattened
            token sequence (flash-attention's `window_size=(left, right)`).
    """

    methods: tuple[tuple[str, ...], ...]
    window_left: int = 32
    window_right: int = 32

    @property
    def num_layers(self) -> int:
        return len(self.methods)

    def needs_residual(self, layer: int, step: int) -> bool:
        return residual_needed(self.methods[layer], step)

    def needs_output(self, layer: int, step: int) -> bool:
        return output_needed(self.methods[layer], step)


def residual_needed(row: Sequence[str], step: int) -> bool:
    """A full step computes the wars residual only if a `wars` step follows before the next full."""
    if row[step] not in FULL_METHODS:
        return False
    for later in row[step + 1:]:
        if later in WINDOW_METHODS:
            return True
        if later in FULL_METHODS:
            return False
    return False


def output_needed(row: Sequence[str], step: int) -> bool:
    """A step keeps its attention output only if the next step reuses it (`ast`)."""
    return step + 1 < len(row) and row[step + 1] == "ast" and row[step] != "ast"


@dataclass(frozen=True)
class Plan:
    """One compression plan for one model; see the module docstring for the JSON layout."""

    model: ModelRef
    sampling: Sampling
    deepcache: DeepCache | None = None
    depth_skip: DepthSkip | None = None
    attention: AttentionPlan | None = None
    notes: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def num_steps(self) -> int:
        return self.sampling.num_inference_steps

    # --- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "model": _drop_none(vars(self.model)),
            "sampling": _drop_none(vars(self.sampling)),
        }
        if self.deepcache is not None:
            dc = _drop_none(vars(self.deepcache))
            if "full_steps" in dc:
                dc["full_steps"] = list(dc["full_steps"])
            out["deepcache"] = dc
        if self.depth_skip is not None:
            out["depth_skip"] = vars(self.depth_skip).copy()
        if self.attention is not None:
            out["attention"] = {
                "window": {"left": self.attention.window_left, "right": self.attention.window_right},
                "methods": [list(row) for row in self.attention.methods],
            }
        if self.notes:
            out["notes"] = dict(self.notes)
        return out

    def to_json(self, indent: int | None = 1) -> str:
        if indent != 1:
            return json.dumps(self.to_dict(), indent=indent)
        return self._once("_json", lambda: json.dumps(self.to_dict(), indent=1))

    def content_hash(self) -> str:
        """A hash of what the plan does (notes left out): equal plans have equal hashes."""
        return self._once("_content_hash", self._hash)

    def _hash(self) -> str:
        body = self.to_dict()
        body.pop("notes", None)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def _once(self, key: str, make: Callable[[], str]) -> str:
        """A plan is frozen, so its JSON and hash are computed once per object and kept beside
        its fields (outside them: equality, `replace` and the JSON do not see the cache)."""
        if key not in self.__dict__:
            object.__setattr__(self, key, make())
        return self.__dict__[key]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read and validate a plan file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise PlanError(f"plan file '{path}': cannot read it ({err.strerror or err}); "
                            "check the path") from err
        return cls.from_json(text, source=str(path))

    @classmethod
    def from_json(cls, text: str, source: str = "plan") -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise PlanError(
                f"{source} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); "
                "write plans with Plan.save (see docs/PLANS.md)"
            ) from err
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        """Validate a parsed JSON document and build the plan."""
        return _parse_plan(data)


def full_plan(model_ref: ModelRef, num_inference_steps: int, guidance_scale: float,
              num_attention_layers: int | None = None) -> Plan:
    """The identity plan: every layer `full` at every step (for transformers), no caching."""
    attention = None
    if num_attention_layers is not None:
        row = ("full",) * num_inference_steps
        attention = AttentionPlan(methods=(row,) * num_attention_layers)
    return Plan(model_ref, Sampling(num_inference_steps, guidance_scale), attention=attention)


# --- validation ----------------------------------------------------------------------------------

def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _fail(where: str, problem: str, fix: str) -> PlanError:
    return PlanError(f"plan.{where}: {problem}; {fix}")


def _object(data: Any, where: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _fail(where, f"expected a JSON object, got {type(data).__name__}", "see docs/PLANS.md")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _fail(where, f"unknown field(s) {', '.join(map(repr, unknown))}",
                    f"allowed fields are {', '.join(sorted(allowed))}")
    missing = sorted(required - set(data))
    if missing:
        raise _fail(where, f"missing field(s) {', '.join(map(repr, missing))}", "add them")
    return data


def _int(data: Mapping[str, Any], key: str, where: str, lo: int, hi: int | None = None) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"{where}.{key}", f"expected an integer, got {value!r}", "write a whole number")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise _fail(f"{where}.{key}", f"{value} is out of range", f"use a value {bound}")
    return value


def _number(data: Mapping[str, Any], key: str, where: str, lo: float, hi: float) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(f"{where}.{key}", f"expected a number, got {value!r}", "write a finite number")
    if not lo <= value <= hi:
        raise _fail(f"{where}.{key}", f"{value} is out of range", f"use a value in [{lo}, {hi}]")
    return float(value)


def _choice(data: Mapping[str, Any], key: str, where: str, options: Sequence[str]) -> str:
    value = data[key]
    if value not in options:
        raise _fail(f"{where}.{key}", f"unknown value {value!r}", f"use one of {', '.join(options)}")
    return value


def _string(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise _fail(f"{where}.{key}", f"expected a non-empty string, got {value!r}", "write a name")
    return value


def _parse_plan(data: Any) -> Plan:
    top = _object(data, "(top level)", {"format", "version", "model", "sampling", "deepcache",
                                         "depth_skip", "attention", "notes"},
                  {"format", "version", "model", "sampling"})
    if top["format"] != PLAN_FORMAT:
        raise _fail("format", f"{top['format']!r} is not an edgediff plan",
                    f"a plan starts with \"format\": \"{PLAN_FORMAT}\"")
    version = top["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _fail("version", f"expected a positive integer, got {version!r}", "use 1")
    if version > PLAN_VERSION:
        raise _fail("version", f"version {version} is newer than this edgediff reads "
                    f"({PLAN_VERSION})", "upgrade edgediff")
    model = _parse_model(top["model"])
    sampling = _parse_sampling(top["sampling"])
    steps = sampling.num_inference_steps
    deepcache = None if top.get("deepcache") is None else _parse_deepcache(top["deepcache"], steps)
    depth = None if top.get("depth_skip") is None else _parse_depth_skip(top["depth_skip"])
    attention = None
    if top.get("attention") is not None:
        attention = _parse_attention(top["attention"], sampling)
        if deepcache is not None or depth is not None:
            raise _fail("attention", "attention methods and U-Net sections in one plan",
                        "keep 'attention' for transformers, 'deepcache'/'depth_skip' for U-Nets")
    notes = top.get("notes") or {}
    if not isinstance(notes, dict):
        raise _fail("notes", f"expected a JSON object, got {type(notes).__name__}", "use {}")
    return Plan(model, sampling, deepcache, depth, attention, notes)


def _parse_model(data: Any) -> ModelRef:
    d = _object(data, "model", {"name", "model_class", "fingerprint"}, {"name", "model_class"})
    fingerprint = d.get("fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise _fail("model.fingerprint", f"expected a string, got {fingerprint!r}",
                    "copy it from evaluators.runtime.model_ref(model) or leave it out")
    return ModelRef(_string(d, "name", "model"), _string(d, "model_class", "model"), fingerprint)


def _parse_sampling(data: Any) -> Sampling:
    d = _object(data, "sampling", {"num_inference_steps", "guidance_scale", "scheduler", "spacing",
                                   "gamma"}, {"num_inference_steps", "guidance_scale"})
    steps = _int(d, "num_inference_steps", "sampling", 1, 1000)
    guidance = _number(d, "guidance_scale", "sampling", 1.0, 100.0)
    scheduler = _string(d, "scheduler", "sampling") if "scheduler" in d else "DDIMScheduler"
    spacing = _choice(d, "spacing", "sampling", ("uniform", "gamma")) if "spacing" in d else "uniform"
    gamma = None
    if spacing == "gamma":
        if d.get("gamma") is None:
            raise _fail("sampling.gamma", "gamma spacing without a gamma", "add e.g. \"gamma\": 1.5")
        gamma = _number(d, "gamma", "sampling", 0.2, 5.0)
    elif d.get("gamma") is not None:
        raise _fail("sampling.gamma", "gamma given with uniform spacing",
                    "set \"spacing\": \"gamma\" or drop gamma")
    return Sampling(steps, guidance, scheduler, spacing, gamma)  # type: ignore[arg-type]


def _parse_deepcache(data: Any, steps: int) -> DeepCache:
    d = _object(data, "deepcache", {"branch", "interval", "schedule", "center", "power",
                                    "full_steps"}, {"branch"})
    branch = _int(d, "branch", "deepcache", 0)
    schedule = _choice(d, "schedule", "deepcache", ("uniform", "nonuniform", "explicit")) \
        if "schedule" in d else "uniform"
    interval = _int(d, "interval", "deepcache", 1, steps) if "interval" in d else 1
    center = power = full_steps = None
    if schedule == "nonuniform":
        for key in ("center", "power"):
            if d.get(key) is None:
                raise _fail(f"deepcache.{key}", "a nonuniform schedule needs center and power",
                            "add e.g. \"center\": 15, \"power\": 1.4")
        center = _int(d, "center", "deepcache", 0, steps - 1)
        power = _number(d, "power", "deepcache", 1.0, 4.0)
        if power <= 1.0:
            raise _fail("deepcache.power", f"{power} is out of range", "use a value in (1, 4]")
    if schedule == "explicit":
        raw = d.get("full_steps")
        if not isinstance(raw, list) or not raw or not all(
                isinstance(s, int) and not isinstance(s, bool) for s in raw):
            raise _fail("deepcache.full_steps", f"expected a list of step numbers, got {raw!r}",
                        "list the steps that run the whole U-Net, starting with 0")
        if raw != sorted(set(raw)) or raw[0] != 0 or raw[-1] >= steps:
            raise _fail("deepcache.full_steps", f"{raw} is not increasing from 0 below {steps}",
                        f"list distinct steps in 0..{steps - 1}, in order, starting with 0")
        full_steps = tuple(raw)
    elif d.get("full_steps") is not None:
        raise _fail("deepcache.full_steps", "full_steps given without an explicit schedule",
                    "set \"schedule\": \"explicit\" or drop full_steps")
    if schedule != "nonuniform" and (d.get("center") is not None or d.get("power") is not None):
        raise _fail("deepcache", f"center/power given with a {schedule} schedule",
                    "set \"schedule\": \"nonuniform\" or drop them")
    plan = DeepCache(branch, interval, schedule, center, power, full_steps)  # type: ignore[arg-type]
    plan.full_step_indices(steps)  # a power law that cannot place the steps fails here
    return plan


def _parse_depth_skip(data: Any) -> DepthSkip:
    d = _object(data, "depth_skip", {"drop_levels"}, {"drop_levels"})
    return DepthSkip(_int(d, "drop_levels", "depth_skip", 1))


def _parse_attention(data: Any, sampling: Sampling) -> AttentionPlan:
    d = _object(data, "attention", {"methods", "window"}, {"methods"})
    window = _object(d.get("window", {"left": 32, "right": 32}), "attention.window",
                     {"left", "right"}, {"left", "right"})
    left = _int(window, "left", "attention.window", 0)
    right = _int(window, "right", "attention.window", 0)
    rows = d["methods"]
    if not isinstance(rows, list) or not rows:
        raise _fail("attention.methods", "expected a list with one list of methods per layer",
                    "give methods[layer][step]")
    steps = sampling.num_inference_steps
    methods = []
    for layer, row in enumerate(rows):
        where = f"attention.methods[{layer}]"
        if not isinstance(row, list) or len(row) != steps:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise _fail(where, f"expected {steps} methods (one per step), got {got}",
                        "give one method per inference step")
        for step, method in enumerate(row):
            if method not in ATTENTION_METHODS:
                raise _fail(f"{where}[{step}]", f"unknown method {method!r}",
                            f"use one of {', '.join(ATTENTION_METHODS)}")
            if method in SHARES_CFG and sampling.guidance_scale <= 1.0:
                raise _fail(f"{where}[{step}]", f"'{method}' shares attention across CFG halves "
                            "but guidance_scale is 1 (no CFG)", "raise guidance_scale or drop asc")
        if row[0] != "full":
            raise _fail(f"{where}[0]", f"step 0 must be 'full', got {row[0]!r}", "set it to 'full'")
        methods.append(tuple(row))
    return AttentionPlan(tuple(methods), left, right)
