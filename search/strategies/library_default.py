"""The baseline of the families that run diffusers' own caches (FLUX, SD3, Qwen-Image, Wan):
each cache at the defaults diffusers ships, then the small sweeps their READMEs show
(`search.params.library_cache.library_defaults`). Every plan is known before anything is
measured, so Optuna is seeded with them and the front shows "library default" beside "searched".

A budget smaller than the list takes the published defaults first (the baseline a user gets by
calling `enable_cache` with no arguments), then the sweeps spread over what is left."""

from __future__ import annotations

from evaluators.plan import Plan
from search.strategies import Proposal, StrategyContext
from search.strategies.fixed import FixedListStrategy


class LibraryDefaultStrategy(FixedListStrategy):
    """The caches' published defaults and README sweeps, as fixed plans."""

    method = "library-default"

    def __init__(self, context: StrategyContext) -> None:
        from search.baselines import spread
        from search.params.library_cache import DEFAULT_LABEL, library_defaults

        base = context.full_plan
        items = []
        for label, section in library_defaults(base.num_steps):
            body = {**base.to_dict(), section.section: section.to_dict()}
            body.pop("notes", None)
            items.append(Proposal(self.method, label, plan=Plan.from_dict(body)))
        budget = context.config.budget
        defaults = [p for p in items if p.label.startswith(DEFAULT_LABEL)][:budget]
        sweeps = [p for p in items if not p.label.startswith(DEFAULT_LABEL)]
        super().__init__(context, defaults + spread(sweeps, budget - len(defaults)))
