"""The `attention` parameters (DiTFastAttn), for N tokens and L self-attention layers:

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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from evaluators.plan import SHARES_CFG, WINDOW_METHODS, Plan
from search.params.base import ParamGroup, nearest, register_group

SEGMENTS = 4
WINDOW_DIVISORS = (16, 8, 4)  # window = N / divisor tokens on each side
SPACE_METHODS = ("full", "full+asc", "wars", "wars+asc", "ast")  # ties in params_of go left


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


@register_group
class AttentionParams(ParamGroup):
    """Window, and one method per (layer, step segment)."""

    section = "attention"

    def __init__(self, facts: Mapping[str, Any], base: Plan, steps: Sequence[int]) -> None:
        super().__init__(facts, base, steps)
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
        out: dict[str, tuple[Any, ...]] = {"window": self.windows}
        out.update({name: self.methods for name in self.cells()})
        return out

    def describe(self) -> list[tuple[str, str]]:
        return [("window", ", ".join(map(str, self.windows))),
                (f"m_{{layer}}_{{segment}} ({self.num_layers} x {SEGMENTS} = "
                 f"{self.num_layers * SEGMENTS} parameters)", ", ".join(self.methods))]

    def build(self, params: Mapping[str, Any], body: dict[str, Any], steps: int) -> None:
        rows = [attention_row([params[f"m_{layer}_{seg}"] for seg in range(SEGMENTS)], steps)
                for layer in range(self.num_layers)]
        uses_window = any(m in WINDOW_METHODS for row in rows for m in row)
        left, right = (params["window"],) * 2 if uses_window else self.base_window
        body["attention"] = {"window": {"left": int(left), "right": int(right)},
                             "methods": [list(row) for row in rows]}

    def params_of(self, plan: Plan, steps: int) -> dict[str, Any]:
        att = plan.attention
        window = nearest(self.windows, att.window_left if att else self.base_window[0])
        params: dict[str, Any] = {"window": window}
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
