"""The baseline of the families that run diffusers' own caches (FLUX, SD3, Qwen-Image, Wan):
each cache at the defaults diffusers ships, then the small sweeps their READMEs show
(`search.params.library_cache.library_defaults`). These plans are known before anything is
measured, so Optuna is seeded with them and the front shows "library default" beside "searched".

A budget smaller than the list takes the published defaults first (the baseline a user gets by
calling `enable_cache` with no arguments), then the sweeps spread over what is left.

MagCache needs the model's own magnitude ratios at the plan's step count: its default (the last
of the defaults) and README sweep are proposed with `prepare` options, and a worker calibrates
the ratios (one generation of the spec's first image under diffusers' calibration mode,
`evaluators.runtime.mag_calibration`) and stores them in the plan (`mag_cache.mag_ratios`)
before it is measured.
"""

from __future__ import annotations

from typing import Any

from evaluators.plan import Plan, fit_notes
from evaluators.techniques.mag_cache import MagCache
from search.strategies import Proposal, StrategyContext
from search.strategies.fixed import FixedListStrategy


def _with_section(base: Plan, section: Any, notes: dict[str, Any] | None = None) -> Plan:
    body = {**base.to_dict(), section.section: section.to_dict()}
    body.pop("notes", None)
    kept = {**fit_notes(base), **(notes or {})}  # what the plan was measured at, checked later
    if kept:
        body["notes"] = kept
    return Plan.from_dict(body)


def mag_cache_proposals(method: str, base: Plan) -> list[Proposal]:
    """MagCache's default and README sweep, each calibrated on a worker (`prepare`)."""
    if base.model.model_class not in MagCache.families:
        return []
    default = MagCache.library_default(base.num_steps)
    out = []
    for section in [default] + [s for s in MagCache.sweep(base.num_steps) if s != default]:
        kind = "default" if section == default else "sweep"
        # "; " inside a label: a candidate's labels are a ", "-separated list (storage)
        label = (f"library {kind}: MagCache" if kind == "default"
                 else f"library sweep: {section.summary()['mag_cache'].replace(', ', '; ')}")
        out.append(Proposal(method, label, prepare={
            "section": "mag_cache", "threshold": section.threshold,
            "max_skip_steps": section.max_skip_steps, "retention_ratio": section.retention_ratio}))
    return out


class LibraryDefaultStrategy(FixedListStrategy):
    """The caches' published defaults and README sweeps, as fixed plans (MagCache's calibrated
    on a worker first)."""

    method = "library-default"

    def __init__(self, context: StrategyContext) -> None:
        from search.baselines import spread
        from search.params.library_cache import DEFAULT_LABEL, library_defaults

        base = context.full_plan
        items = [Proposal(self.method, label, plan=_with_section(base, section))
                 for label, section in library_defaults(base.num_steps, base.model.model_class)]
        items += mag_cache_proposals(self.method, base)
        budget = context.config.budget
        defaults = [p for p in items if p.label.startswith(DEFAULT_LABEL)][:budget]
        sweeps = [p for p in items if not p.label.startswith(DEFAULT_LABEL)]
        super().__init__(context, defaults + spread(sweeps, budget - len(defaults)))

    @classmethod
    def prepare_plan(cls, evaluator: Any, **options: Any) -> Plan:
        """MagCache at these knobs with ratios calibrated on the evaluator's model, step count and
        first image."""
        from evaluators.runtime.mag_calibration import calibrate_subject

        base = evaluator.full_plan
        spec = evaluator.spec
        seeds = spec.seeds(1)
        conditions = evaluator.subject.conditions(spec, 1)
        ratios = calibrate_subject(evaluator.subject, base, seeds, conditions)
        section = MagCache(ratios, float(options["threshold"]), int(options["max_skip_steps"]),
                           float(options["retention_ratio"]))
        return _with_section(base, section, {"calibration": {
            "mag_ratios": f"diffusers MagCache calibration, {base.num_steps} steps, seed "
                          f"{seeds[0]}"}})
