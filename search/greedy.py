"""The DiTFastAttn greedy plan search: the baseline edgediff reproduces.

Source: DiTFastAttn (Yuan et al., NeurIPS 2024), `dit_fast_attention.py` of thu-nics/DiTFastAttn
(`transform_model_fast_attention` and its forward pre-hook). One calibration generation runs with
every self-attention layer `full`. Before the real forward of each step t >= 1, the transformer
output `raw` of this step with every layer `full` is computed; then layer by layer, in order, the
candidates `ast`, `wars+asc`, `wars`, `full+asc` (most to least compressed) are tried and the first
whose DiTFastAttn loss against `raw` is below the layer's threshold (l + 1) / L * delta is kept,
else `full`, as the current reference code does (the order, the first-pass rule and the
threshold are the reference's). Decisions stay in place while later layers are tried (sequential
greedy). The loss is the reference's relative error `mean(clip(|(a - b) / (max(a, b) + 1e-6)|, 0,
10))` over the whole transformer output (learned-sigma channels included), taken in float64. The
`asc` candidates compute the conditional CFG half, whichever half the model family puts it in
(`evaluators.runtime.attention.cond_first`), as the reference does. The real forward of step t
then runs with the chosen methods in calibration mode, caching every residual and output, so later
steps can try `wars` and `ast`. Trial forwards write no cache.

Deliberate differences from the reference code:
- latents come from one seed per image (seed, seed + 1, ...), as all edgediff subjects draw them;
  the reference draws the whole batch from one generator seeded `seed`. Class labels are drawn as
  its `run_dit.py` draws them.
- at step 0 nothing is tried (step 0 stays full); the reference computes an unused raw output there.
- methods that share CFG halves are not tried when guidance_scale <= 1 (the reference always uses
  CFG), and the reference's uncompressed generation and final SSIM report are left out.
- only self-attention (`attn1`) is searched, as in the reference's published runs (its attn2 and
  feed-forward calibration are switched off).
- the default window is num_tokens // 8 (the published 128 of 1024 tokens), not a fixed 128.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from tqdm.auto import tqdm

from evaluators.families import FAMILIES, facts_of
from evaluators.plan import SHARES_CFG, WINDOW_METHODS, AttentionPlan, Plan, PlanError, fit_notes
from evaluators.quality import ditfastattn_loss
from evaluators.runtime.attention import AttentionRuntime, attention_runtime
from evaluators.subjects import Condition, Subject

DEFAULT_DELTAS: tuple[float, ...] = (0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15)  # the published sweep
CANDIDATES = ("ast", "wars+asc", "wars", "full+asc")  # most to least compressed
DEFAULT_CALIBRATION_SAMPLES = 8
DEFAULT_CALIBRATION_SEED = 3


def default_window(num_tokens: int) -> int:
    """The published share of the window: 128 of DiT-XL/2-512's 1024 tokens."""
    return max(1, num_tokens // 8)


def layer_thresholds(delta: float, num_layers: int) -> list[float]:
    """Layer l (0-based) passes when loss < (l + 1) / L * delta: the error budget accumulates."""
    return [(layer + 1) / num_layers * delta for layer in range(num_layers)]


def greedy_plan(subject: Subject, base: Plan, delta: float, *,
                n_calib: int = DEFAULT_CALIBRATION_SAMPLES, seed: int = DEFAULT_CALIBRATION_SEED,
                window: int | None = None, conditions: Sequence[Condition] | None = None,
                progress: bool = False) -> Plan:
    """The DiTFastAttn plan found by the greedy search at threshold `delta`.

    Args:
        subject: a subject whose denoiser is a supported diffusion transformer.
        base: the uncompressed plan (all `full`): model, steps and guidance of the calibration.
        delta: the threshold; 0 gives the uncompressed plan.
        n_calib: calibration images (one generation of all of them).
        seed: seed of the class labels and of the first image's latent.
        window: the `wars` window (keys i - w .. i + w); default `default_window(tokens)`.
        conditions: calibration conditions (prompts, required for text-to-image subjects; for
            class-conditional subjects they replace the drawn labels); the first n_calib are used.
        progress: show a bar over the denoising steps.
    """
    model = subject.denoiser
    _check(subject, base, delta, n_calib)
    facts = facts_of(model)
    num_layers = facts.num_layers or 0
    window = default_window(facts.num_tokens or 0) if window is None else window
    rows = [["full"] * base.num_steps for _ in range(num_layers)]
    # delta 0: the loss is >= 0 and the rule is strict, so no candidate can pass: skip the trials.
    if delta > 0:
        start = replace(base, attention=AttentionPlan(tuple(map(tuple, rows)), window, window))
        seeds, calib = calibration_inputs(subject, n_calib, seed, conditions)
        candidates = [m for m in CANDIDATES
                      if base.sampling.guidance_scale > 1 or m not in SHARES_CFG]
        with tqdm(total=base.num_steps, desc=f"greedy delta={delta}", disable=not progress,
                  leave=False) as bar:
            search = _GreedySearch(layer_thresholds(delta, num_layers), candidates, bar)
            handle = model.register_forward_pre_hook(search, with_kwargs=True)
            try:
                subject.generate_batch(start, seeds, calib)
            finally:
                handle.remove()
        if search.runtime is not None:
            rows = search.runtime.methods
    methods = tuple(tuple(row) for row in rows)
    uses_window = any(m in WINDOW_METHODS for row in methods for m in row)
    # Without wars the window does nothing: keep the default so equal plans hash equal.
    attention = AttentionPlan(methods, window, window) if uses_window else AttentionPlan(methods)
    notes = {**fit_notes(base), "search": "greedy", "delta": delta, "n_calib": n_calib,
             "seed": seed, "window": window, "thresholds": "(l+1)/L*delta"}
    return replace(base, attention=attention, notes=notes)


def calibration_inputs(subject: Subject, n_calib: int, seed: int,
                       conditions: Sequence[Condition] | None = None
                       ) -> tuple[list[int], list[Condition]]:
    """Seeds and conditions of the calibration images."""
    seeds = list(range(seed, seed + n_calib))
    if conditions is not None:
        if len(conditions) < n_calib:
            raise PlanError(f"greedy_plan: {len(conditions)} calibration conditions for n_calib "
                            f"{n_calib}; give at least n_calib conditions or lower n_calib")
        return seeds, list(conditions)[:n_calib]
    if subject.conditioning == "prompt":
        raise PlanError(f"greedy_plan: '{subject.name}' is a text-to-image model; pass "
                        "conditions=[prompts] for the calibration")
    if subject.conditioning == "class":
        generator = torch.Generator().manual_seed(seed)
        labels = torch.randint(0, subject.num_classes or 1, (n_calib,), generator=generator)
        return seeds, labels.tolist()
    return seeds, [None] * n_calib


class _GreedySearch:
    """Forward pre-hook on the denoiser: drives the step clock and decides step t's methods."""

    def __init__(self, thresholds: list[float], candidates: Sequence[str], bar: Any) -> None:
        self.thresholds = thresholds
        self.candidates = candidates
        self.bar = bar
        self.runtime: AttentionRuntime | None = None
        self.step = 0  # forwards seen in this generation

    def __call__(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        if self.runtime is None:
            self.runtime = attention_runtime(module)
            if self.runtime is None:
                raise PlanError("greedy_plan: no attention plan is applied during the calibration "
                                "generation; the subject must apply the plan it is given")
            self.runtime.calibrating = True
            self.runtime.state.manual = True
        step, self.step = self.step, self.step + 1
        self.runtime.state.set_step(step)
        if step > 0:
            self._decide(module, step, args, kwargs)
        self.bar.update()

    def _decide(self, module: torch.nn.Module, step: int, args: tuple, kwargs: dict) -> None:
        rt = self.runtime
        assert rt is not None
        rt.state.frozen = True  # trials: the clock stands still and no cache is written
        try:
            # module.forward skips torch's pre-hooks (this one); the step clock stands still.
            raw = _sample(module.forward(*args, **kwargs))
            for row, threshold in zip(rt.methods, self.thresholds, strict=True):
                for method in self.candidates:
                    row[step] = method
                    if ditfastattn_loss(raw, _sample(module.forward(*args, **kwargs))) < threshold:
                        break
                else:
                    row[step] = "full"
        finally:
            rt.state.frozen = False


def _sample(output: Any) -> torch.Tensor:
    """The whole transformer output (learned-sigma channels included)."""
    return output[0] if isinstance(output, tuple) else output.sample


def _check(subject: Subject, base: Plan, delta: float, n_calib: int) -> None:
    kind = type(subject.denoiser).__name__
    family = FAMILIES.get(kind)
    if family is None or "attention" not in family.techniques:
        takes = [cls for cls, f in FAMILIES.items() if "attention" in f.techniques]
        raise PlanError(f"greedy_plan: '{subject.name}' is a {kind}; the DiTFastAttn greedy search "
                        f"needs a diffusion transformer ({', '.join(takes)}), "
                        "search U-Nets with DeepCache plans")
    if delta < 0:
        raise PlanError(f"greedy_plan: delta {delta} < 0; use a threshold >= 0 (e.g. 0.05)")
    if n_calib < 1:
        raise PlanError(f"greedy_plan: n_calib {n_calib}; use at least 1 calibration image")
    if base.attention is not None and any(m != "full" for row in base.attention.methods for m in row):
        raise PlanError("greedy_plan: base must be the uncompressed plan; pass "
                        "evaluators.plan.full_plan(...) with every layer 'full'")
