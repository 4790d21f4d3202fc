"""Strict JSON reading for plans and specs: valid UTF-8, bounded size and depth, finite numbers,
no lone surrogates.

Python's `json` module accepts more than JSON: NaN and Infinity, integers of any length (slow, and
past 4,300 digits an error of its own), nesting until the interpreter's recursion limit, and
`"\\ud800"` escapes that decode to strings no UTF-8 encoder (the store's driver, the dashboard's
page) can write. `loads_strict` refuses each with a `JSONInputError` naming the problem, so a file
that reads here can be stored, served and read back.
"""

from __future__ import annotations

import json
import re
from typing import Any

from evaluators.errors import EvaluatorError

MAX_BYTES = 2_000_000  # a 1,000-step plan of a 28-layer transformer is under 0.5 MB
MAX_DEPTH = 32  # a plan nests 4 levels deep
MAX_INT_DIGITS = 30  # every count and seed in a plan fits in 20 digits

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


class JSONInputError(EvaluatorError):
    """A document that is not strict JSON (see the module docstring); the message names the fix."""


def loads_strict(data: str | bytes, source: str = "document", *, max_bytes: int = MAX_BYTES,
                 max_depth: int = MAX_DEPTH) -> Any:
    """Parse `data` (bytes must be UTF-8) as strict JSON; JSONInputError if it is not."""
    fix = "write it with Plan.save / json.dump (UTF-8, finite numbers)"
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise JSONInputError(f"{source} is {size:,} bytes, over the limit of {max_bytes:,}: "
                             "a plan is far smaller; check that this is the right file")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise JSONInputError(f"{source} is not UTF-8 text (byte {err.start}: "
                                 f"{data[err.start:err.start + 1]!r}); {fix}") from None
    else:
        text = data
    text = text.removeprefix("\ufeff")
    depth = _depth(text)
    if depth > max_depth:
        raise JSONInputError(f"{source} nests {depth} levels deep, over the limit of {max_depth}; {fix}")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_int=_bounded_int,
                           parse_float=_finite_float)
    except json.JSONDecodeError as err:
        raise JSONInputError(f"{source} is not valid JSON (line {err.lineno}, column {err.colno}: "
                             f"{err.msg}); {fix}") from None
    except ValueError as err:  # from _no_constant / _bounded_int / _finite_float
        raise JSONInputError(f"{source}: {err}; {fix}") from None
    where = _surrogate(value)
    if where is not None:
        raise JSONInputError(f"{source} holds a lone UTF-16 surrogate escape in {where} (such as "
                             "\"\\ud800\"), which no UTF-8 text can hold; remove it")
    return value


def dumps_strict(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    """json.dumps that writes only what `loads_strict` reads back (no NaN, Infinity, lone
    surrogates, huge integers, too deep or too large a document); else JSONInputError."""
    try:
        text = json.dumps(value, indent=indent, sort_keys=sort_keys, allow_nan=False)
    except ValueError as err:
        raise JSONInputError(f"cannot write strict JSON: {err}; use finite numbers") from None
    loads_strict(text, "the document to write")
    return text


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:40]} is too large for a finite number")
    return value


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(digits.lstrip('-')):,} digits (the limit is {MAX_INT_DIGITS})")
    return int(digits)


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects (brackets inside strings do not count)."""
    deepest = depth = 0
    for bracket in _BRACKETS.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _surrogate(value: Any, where: str = "(top level)") -> str | None:
    """The path of the first string (or key) holding a lone surrogate, or None."""
    stack = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _has_surrogate(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and _has_surrogate(key):
                    return f"{path} (a key)"
                stack.append((child, f"{path}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
