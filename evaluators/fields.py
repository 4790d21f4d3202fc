"""Validation of plan fields at the boundary: every failure is one `plan.<field>: problem; fix` line.

Torch-free; used by `evaluators.plan` for the top level, `model` and `sampling`, and by every
technique's section in `evaluators/techniques/`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from evaluators.errors import EvaluatorError


class PlanError(EvaluatorError):
    """A plan is malformed or does not fit the model; the message names the field and the fix."""


def fail(where: str, problem: str, fix: str) -> PlanError:
    return PlanError(f"plan.{where}: {problem}; {fix}")


def drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def json_object(data: Any, where: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise fail(where, f"expected a JSON object, got {type(data).__name__}", "see docs/PLANS.md")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise fail(where, f"unknown field(s) {', '.join(map(repr, unknown))}",
                   f"allowed fields are {', '.join(sorted(allowed))}")
    missing = sorted(required - set(data))
    if missing:
        raise fail(where, f"missing field(s) {', '.join(map(repr, missing))}", "add them")
    return data


def integer(data: Mapping[str, Any], key: str, where: str, lo: int, hi: int | None = None) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(f"{where}.{key}", f"expected an integer, got {value!r}", "write a whole number")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise fail(f"{where}.{key}", f"{value} is out of range", f"use a value {bound}")
    return value


def number(data: Mapping[str, Any], key: str, where: str, lo: float, hi: float) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(f"{where}.{key}", f"expected a number, got {value!r}", "write a finite number")
    if not lo <= value <= hi:
        raise fail(f"{where}.{key}", f"{value} is out of range", f"use a value in [{lo}, {hi}]")
    return float(value)


def choice(data: Mapping[str, Any], key: str, where: str, options: Sequence[str]) -> str:
    value = data[key]
    if value not in options:
        raise fail(f"{where}.{key}", f"unknown value {value!r}", f"use one of {', '.join(options)}")
    return value


def string(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise fail(f"{where}.{key}", f"expected a non-empty string, got {value!r}", "write a name")
    return value
