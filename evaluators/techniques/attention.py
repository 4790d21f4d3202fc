"""DiTFastAttn on a diffusion transformer (Yuan et al., NeurIPS 2024): the `attention` plan section.

One method per (self-attention layer, step). The attention processor lives in
`evaluators.runtime.attention`, the greedy calibration in `search/greedy.py`, the search's
parameters in `search/params/attention.py`. The reference counter's MAC charge (`ditfastattn_macs`)
is pure arithmetic and lives here with the methods it prices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from evaluators.fields import fail, integer, json_object
from evaluators.techniques.base import Technique, register
from evaluators.techniques.sampling import Sampling

# DiTFastAttn methods, most to least compressed is: ast, wars+asc, wars, full+asc (asc), full.
ATTENTION_METHODS = ("full", "wars", "ast", "asc", "full+asc", "wars+asc")
SHARES_CFG = frozenset({"asc", "full+asc", "wars+asc"})  # compute one CFG half, copy it
FULL_METHODS = frozenset({"full", "asc", "full+asc"})  # full attention: may refresh the residual
WINDOW_METHODS = frozenset({"wars", "wars+asc"})


@register
@dataclass(frozen=True)
class AttentionPlan(Technique):
    """DiTFastAttn on a diffusion transformer (Yuan et al., NeurIPS 2024).

    Attributes:
        methods: `methods[layer][step]` for every self-attention layer and step, one of
            `full`, `wars` (window attention + the residual cached at the last full step),
            `ast` (reuse the layer's output of the previous step), `asc` / `full+asc` (full
            attention on one CFG half, copied to the other), `wars+asc`.
        window_left, window_right: query i attends keys i - left .. i + right of the flattened
            token sequence (flash-attention's `window_size=(left, right)`).
    """

    section: ClassVar[str] = "attention"
    title: ClassVar[str] = "DiTFastAttn"
    order: ClassVar[int] = 30
    installer: ClassVar[str] = "evaluators.runtime.attention:install_attention_plan"
    view: ClassVar[str] = "attention"

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

    # --- the plan section -------------------------------------------------------------------
    @classmethod
    def parse(cls, data: Any, sampling: Sampling) -> AttentionPlan:
        d = json_object(data, "attention", {"methods", "window"}, {"methods"})
        window = json_object(d.get("window", {"left": 32, "right": 32}), "attention.window",
                             {"left", "right"}, {"left", "right"})
        left = integer(window, "left", "attention.window", 0)
        right = integer(window, "right", "attention.window", 0)
        rows = d["methods"]
        if not isinstance(rows, list) or not rows:
            raise fail("attention.methods", "expected a list with one list of methods per layer",
                       "give methods[layer][step]")
        return cls(tuple(_parse_row(row, layer, sampling) for layer, row in enumerate(rows)),
                   left, right)

    def to_dict(self) -> dict[str, Any]:
        return {"window": {"left": self.window_left, "right": self.window_right},
                "methods": [list(row) for row in self.methods]}

    def check_with(self, sections: Mapping[str, Technique]) -> None:
        if "deepcache" in sections or "depth_skip" in sections:
            raise fail("attention", "attention methods and U-Net sections in one plan",
                       "keep 'attention' for transformers, 'deepcache'/'depth_skip' for U-Nets")

    def summary(self) -> dict[str, str]:
        cells = [m for row in self.methods for m in row]
        return {"attention": ", ".join(f"{m} {cells.count(m) / len(cells):.0%}"
                                       for m in ATTENTION_METHODS if cells.count(m)),
                "window": f"{self.window_left} left, {self.window_right} right"}

    def timeline(self, num_steps: int) -> dict[str, Any]:
        return {"layers": self.num_layers, "methods": [list(row) for row in self.methods],
                "legend": list(ATTENTION_METHODS)}

    # --- the MAC rule -----------------------------------------------------------------------
    def ditfastattn_macs(self, step: int, batch: int, num_tokens: int, dim: int) -> list[int]:
        """Self-attention MACs (scores + weighted sum) of each layer at `step`, charged as the
        DiTFastAttn reference counter does (`count_flops_attn` of the current upstream): a window
        step costs (right - left) / N of full attention (0 for a symmetric window), a
        residual-computing full step 1 + (right - left) / N, `asc` halves both products, `ast` is
        free."""
        n = num_tokens
        ws = self.window_right - self.window_left
        base = batch * n * n * dim  # one of the two products (scores, weighted sum)
        charged = []
        for row in self.methods:
            method = row[step]
            extra = 1 + ws / n if residual_needed(row, step) else 1.0
            if method == "ast":
                share = 0.0
            elif method in FULL_METHODS:
                share = extra
            else:  # wars, wars+asc
                share = ws / n
            if method in SHARES_CFG:  # one CFG half computed: both products halve
                share /= 2
            qk = kv = base * share
            charged.append(int(qk + kv))
        return charged


def _parse_row(row: Any, layer: int, sampling: Sampling) -> tuple[str, ...]:
    steps = sampling.num_inference_steps
    where = f"attention.methods[{layer}]"
    if not isinstance(row, list) or len(row) != steps:
        got = len(row) if isinstance(row, list) else type(row).__name__
        raise fail(where, f"expected {steps} methods (one per step), got {got}",
                   "give one method per inference step")
    for step, method in enumerate(row):
        if method not in ATTENTION_METHODS:
            raise fail(f"{where}[{step}]", f"unknown method {method!r}",
                       f"use one of {', '.join(ATTENTION_METHODS)}")
        if method in SHARES_CFG and sampling.guidance_scale <= 1.0:
            raise fail(f"{where}[{step}]", f"'{method}' shares attention across CFG halves "
                       "but guidance_scale is 1 (no CFG)", "raise guidance_scale or drop asc")
    if row[0] != "full":
        raise fail(f"{where}[0]", f"step 0 must be 'full', got {row[0]!r}", "set it to 'full'")
    return tuple(row)


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
