"""A strategy that proposes a fixed list, cut to the budget (the paper baselines' shape): on a
resumed search, what an earlier run measured to the end is counted done, and what it prepared
(a calibrated plan) is not prepared again."""

from __future__ import annotations

from collections import deque

from evaluators.plan import Plan
from search.evaluation import stored_evaluations
from search.strategies import Proposal, ProposalOutcome, Strategy, StrategyContext
from storage import candidate_labels


class FixedListStrategy(Strategy):
    """Proposes `items` (spread over the budget by `baselines.spread`) in order."""

    def __init__(self, context: StrategyContext, items: list[Proposal]) -> None:
        from search.baselines import spread

        store, study = context.store, context.study
        items = spread(items, context.config.budget)
        self._total = len(items)
        stored = {label: c for c in store.candidates(study, method=self.method)
                  for label in candidate_labels(c.label)}
        self._queue: deque[Proposal] = deque()
        self._done = 0
        for item in items:
            seen = stored.get(item.label)
            if seen is not None and item.plan is None:
                self.check_resumed(context, Plan.from_json(seen.plan_json))
            # measured to the end (a full pass, or stopped at the screen) by an earlier run
            if seen is not None and stored_evaluations(store, study, seen.plan_hash, screened=True):
                self._done += 1
                continue
            if seen is not None and item.plan is None:  # prepared before the stop: not again
                item.plan = Plan.from_json(seen.plan_json)
            self._queue.append(item)

    def check_resumed(self, context: StrategyContext, plan: Plan) -> None:
        """A plan an earlier run prepared for one of the items: raise if it was made otherwise."""
        return None

    def known_plans(self) -> list[Plan]:
        return [item.plan for item in self._queue if item.plan is not None]

    def ask(self) -> Proposal | None:
        return self._queue.popleft() if self._queue else None

    def tell(self, proposal: Proposal, outcome: ProposalOutcome) -> None:
        self._done += 1

    @property
    def done(self) -> int:
        return self._done

    @property
    def total(self) -> int:
        return self._total
