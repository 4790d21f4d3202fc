"""The baseline of the families that run diffusers' own caches (FLUX, SD3, Qwen-Image, Wan):
each cache at the defaults diffusers ships, then the small sweeps their READMEs show
(`search.params.library_cache.library_defaults`), spread over the budget. Every plan is known
before anything is measured, so Optuna is seeded with them and the front shows "library default"
beside "searched"."""

from __future__ import annotations

from evaluators.plan import Plan
from search.strategies import Proposal, StrategyContext
from search.strategies.fixed import FixedListStrategy


class LibraryDefaultStrategy(FixedListStrategy):
    """The caches' published defaults and README sweeps, as fixed plans."""

    method = "library-default"

    def __init__(self, context: StrategyContext) -> None:
        from search.params.library_cache import library_defaults

        base = context.full_plan
        items = []
        for label, section in library_defaults(base.num_steps):
            body = {**base.to_dict(), section.section: section.to_dict()}
            body.pop("notes", None)
            items.append(Proposal(self.method, label, plan=Plan.from_dict(body)))
        super().__init__(context, items)
