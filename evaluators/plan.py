"""The plan: a versioned JSON document that says how to run one model cheaper.

Defined once here and read by everything else (the runtime, the store, the dashboard). Torch-free,
so the store and the CLI can validate plans without loading a model. A plan holds:

- `model`: the model it was found for (name, diffusers class, fingerprint of its config);
- `sampling`: scheduler, number of inference steps, guidance scale, and the timestep placement
  (`uniform`, the scheduler's own spacing, or `gamma`, Kim et al.'s (i/N)^gamma placement);
- any of the technique sections registered in `evaluators/techniques/` (one module each): for
  U-Nets `deepcache` (branch, interval, schedule) and/or `depth_skip` (deepest levels dropped),
  for transformers `attention` (one DiTFastAttn method per self-attention layer and step).

`Plan.from_dict` checks everything that does not need the model (names, ranges, step 0 full, `asc`
needs guidance); `evaluators.runtime.check_plan_fits` checks the rest against a loaded model and
its family (`evaluators/families/`: which sections apply to it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluators.fields import PlanError, drop_none, fail, json_object, string
from evaluators.jsonread import JSONInputError, dumps_strict, loads_strict
from evaluators.techniques import SECTIONS, Technique
from evaluators.techniques.attention import (
    ATTENTION_METHODS,
    FULL_METHODS,
    SHARES_CFG,
    WINDOW_METHODS,
    AttentionPlan,
    output_needed,
    residual_needed,
)
from evaluators.techniques.deepcache import CacheSchedule, DeepCache, power_law_steps
from evaluators.techniques.depth_skip import DepthSkip
from evaluators.techniques.sampling import MAX_GUIDANCE, MAX_STEPS, Sampling, Spacing

__all__ = ["ATTENTION_METHODS", "FULL_METHODS", "MAX_GUIDANCE", "MAX_STEPS", "PLAN_FORMAT", "PLAN_VERSION",
           "SHARES_CFG", "WINDOW_METHODS", "AttentionPlan", "CacheSchedule", "DeepCache", "DepthSkip",
           "ModelRef", "Plan", "PlanError", "Sampling", "Spacing", "config_fingerprint", "fit_notes",
           "full_plan", "output_needed", "power_law_steps", "residual_needed"]

PLAN_FORMAT = "edgediff-plan"
PLAN_VERSION = 1
MEASURED_SCHEDULER = "DDIMScheduler"  # what `edgediff evaluate` and `search` sample with
MAX_PLAN_BYTES = 2_000_000  # a 1,000-step plan of a 28-layer transformer is under 0.5 MB

# Config keys that say nothing about the architecture or the weights' shapes.
_BOOKKEEPING_KEYS = {"_name_or_path", "_diffusers_version", "_use_default_values", "_commit_hash"}
_TOP_LEVEL = {"format", "version", "model", "sampling", "notes"}


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


@dataclass(frozen=True, init=False)
class Plan:
    """One compression plan for one model; see the module docstring for the JSON layout.

    `Plan(model, sampling, deepcache=..., attention=..., notes=...)`: every registered section is
    a keyword argument and an attribute (`plan.deepcache` is None when the plan has none);
    `sections` holds the present ones in plan-file order. `dataclasses.replace(plan, attention=x)`
    replaces one section (None removes it).
    """

    model: ModelRef
    sampling: Sampling
    sections: tuple[Technique, ...] = ()
    notes: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __init__(self, model: ModelRef, sampling: Sampling, *, sections: Iterable[Technique] = (),
                 notes: Mapping[str, Any] | None = None, **named: Technique | None) -> None:
        unknown = sorted(set(named) - set(SECTIONS))
        if unknown:
            raise TypeError(f"Plan() got unknown section(s) {', '.join(unknown)}; registered "
                            f"sections are {', '.join(SECTIONS)}")
        present = {type(s).section: s for s in sections}
        present.update(named)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "sampling", sampling)
        object.__setattr__(self, "sections", tuple(
            present[name] for name in SECTIONS if present.get(name) is not None))
        object.__setattr__(self, "notes", dict(notes or {}))

    def __getattr__(self, name: str) -> Any:  # plan.deepcache, plan.attention, ...
        if name in SECTIONS:
            return self.section(name)
        raise AttributeError(f"'Plan' object has no attribute '{name}'")

    def section(self, name: str) -> Technique | None:
        """The section `name` of the plan, or None when the plan has none."""
        for config in self.__dict__.get("sections", ()):
            if type(config).section == name:
                return config
        return None

    @property
    def section_names(self) -> tuple[str, ...]:
        return tuple(type(s).section for s in self.sections)

    @property
    def num_steps(self) -> int:
        return self.sampling.num_inference_steps

    # --- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "model": drop_none(vars(self.model)),
            "sampling": drop_none(vars(self.sampling)),
        }
        for config in self.sections:
            out[type(config).section] = config.to_dict()
        if self.notes:
            out["notes"] = dict(self.notes)
        return out

    def to_json(self, indent: int | None = 1) -> str:
        if indent != 1:
            return _strict_json(self.to_dict(), indent)
        return self._once("_json", lambda: _strict_json(self.to_dict(), 1))

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
        text = self.to_json() + "\n"
        if path.is_dir():
            raise PlanError(f"'{path}' is a folder: give a plan file name such as {path / 'plan.json'}")
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as err:
            raise PlanError(f"cannot write the plan to '{path}' ({err.strerror or err}); "
                            "choose a writable path") from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read and validate a plan file."""
        path = Path(path)
        if path.is_dir():
            raise PlanError(f"plan file '{path}' is a folder: give the plan's JSON file")
        try:
            with open(path, "rb") as file:
                data = file.read(MAX_PLAN_BYTES + 1)  # a huge file is refused without reading it all
        except OSError as err:
            raise PlanError(f"plan file '{path}': cannot read it ({err.strerror or err}); "
                            "check the path") from None
        return cls.from_json(data, source=str(path))

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "plan") -> Plan:
        """Parse plan JSON (bytes must be UTF-8): strict JSON only (`evaluators.jsonread`)."""
        try:
            data = loads_strict(text, source, max_bytes=MAX_PLAN_BYTES)
        except JSONInputError as err:
            raise PlanError(str(err)) from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        """Validate a parsed JSON document and build the plan."""
        return _parse_plan(data)


FIT_NOTES = ("geometry",)  # notes the runtime checks (`evaluators.runtime.fit`)


def fit_notes(plan: Plan) -> dict[str, Any]:
    """The notes of `plan` that plans derived from it keep: what it was measured at
    (`geometry`), which `apply_plan` checks. Notes are outside the content hash."""
    return {k: plan.notes[k] for k in FIT_NOTES if k in plan.notes}


def full_plan(model_ref: ModelRef, num_inference_steps: int, guidance_scale: float,
              num_attention_layers: int | None = None) -> Plan:
    """The identity plan: every layer `full` at every step (for transformers), no caching."""
    attention = None
    if num_attention_layers is not None:
        row = ("full",) * num_inference_steps
        attention = AttentionPlan(methods=(row,) * num_attention_layers)
    return Plan(model_ref, Sampling(num_inference_steps, guidance_scale), attention=attention)


# --- validation ----------------------------------------------------------------------------------

def _strict_json(data: dict[str, Any], indent: int | None) -> str:
    """JSON that `Plan.from_json` reads back: no NaN, Infinity or lone surrogates (else PlanError)."""
    try:
        return dumps_strict(data, indent=indent)
    except JSONInputError as err:
        raise PlanError(f"plan: {err}") from None


def _parse_plan(data: Any) -> Plan:
    top = json_object(data, "(top level)", _TOP_LEVEL | set(SECTIONS),
                      {"format", "version", "model", "sampling"})
    if top["format"] != PLAN_FORMAT:
        raise fail("format", f"{top['format']!r} is not an edgediff plan",
                   f"a plan starts with \"format\": \"{PLAN_FORMAT}\"")
    version = top["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise fail("version", f"expected a positive integer, got {version!r}", "use 1")
    if version > PLAN_VERSION:
        raise fail("version", f"version {version} is newer than this edgediff reads "
                   f"({PLAN_VERSION})", "upgrade edgediff")
    model = _parse_model(top["model"])
    sampling = Sampling.parse(top["sampling"])
    sections = {name: technique.parse(top[name], sampling)
                for name, technique in SECTIONS.items() if top.get(name) is not None}
    for config in sections.values():
        config.check_with(sections)
    notes = top.get("notes") or {}
    if not isinstance(notes, dict):
        raise fail("notes", f"expected a JSON object, got {type(notes).__name__}", "use {}")
    return Plan(model, sampling, sections=sections.values(), notes=notes)


def _parse_model(data: Any) -> ModelRef:
    d = json_object(data, "model", {"name", "model_class", "fingerprint"}, {"name", "model_class"})
    fingerprint = d.get("fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise fail("model.fingerprint", f"expected a string, got {fingerprint!r}",
                   "copy it from evaluators.runtime.model_ref(model) or leave it out")
    return ModelRef(string(d, "name", "model"), string(d, "model_class", "model"), fingerprint)
