"""The U-Net paper baseline: the DeepCache grid of skip branches x cache intervals
(`search.baselines.deepcache_grid`), most expensive first, spread over the budget."""

from __future__ import annotations

from search.strategies import Proposal, StrategyContext
from search.strategies.fixed import FixedListStrategy


class DeepCacheGridStrategy(FixedListStrategy):
    """Every plan of the grid is known before anything is measured (Optuna is seeded with them)."""

    method = "deepcache-grid"

    def __init__(self, context: StrategyContext) -> None:
        from search.baselines import deepcache_grid

        items = [Proposal(self.method, label, plan=plan)
                 for label, plan in deepcache_grid(context.facts, context.full_plan)]
        super().__init__(context, items)
