"""Plain-text tables and JSON for the command line."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any


def one_line(text: str) -> str:
    """`text` with line breaks, tabs and other control characters shown as escapes (a name holding
    a newline must not split a table row or an error line)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] | None = None) -> str:
    """Columns padded to their widest cell; numbers right-aligned where `right` says so."""
    cells = [[str(h) for h in headers]] + [["" if c is None else one_line(str(c)) for c in row]
                                           for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    right = right or [False] * len(headers)

    def line(row: list[str]) -> str:
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def giga(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value / 1e9:.{digits}f}"


def number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def footprint(extra: dict[str, Any]) -> str:
    """An evaluation's parameters that never run, as "336.3M/859.5M (39.1%)"; "" if not counted."""
    params = extra.get("params")
    if not params or not params.get("params"):
        return ""
    return (f"{params['skipped'] / 1e6:.1f}M/{params['params'] / 1e6:.1f}M "
            f"({params['skipped'] / params['params']:.1%})")


def memory(skipped_bytes: dict[str, int]) -> str:
    """Bytes by dtype as "672.6 MB float16" (joined with " + " for mixed dtypes); "0 B" if none."""
    parts = [f"{size / 1e6:.1f} MB {dtype}" for dtype, size in sorted(skipped_bytes.items()) if size]
    return " + ".join(parts) or "0 B"


def jsonable(value: Any) -> Any:
    """Dataclasses, tuples and datetimes as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def dumps(value: Any) -> str:
    return json.dumps(jsonable(value), indent=2)
