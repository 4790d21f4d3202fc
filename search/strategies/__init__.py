"""Search strategies behind one ask/tell interface (like Optuna's `BaseSampler`): the driver asks
each strategy for proposals, runs them on workers and tells it the outcome.

One module per strategy, registered by name in `search.methods`: `greedy` (the DiTFastAttn greedy
for transformers), `deepcache_grid` (the DeepCache grid for U-Nets), `optuna_search`. Every
strategy rebuilds its state from the store (and Optuna's own tables in the same database) when a
search resumes, so a killed search continues where it stopped.

Two hooks let strategies work together without the driver knowing which is which:
`known_plans` (plans a strategy will propose that are known before any measurement) and
`hear(plans)` (another strategy's plans: Optuna enqueues them as seeds). A proposal whose plan
must first be built on a worker (the greedy's calibration) carries `prepare` options, which the
worker hands to the strategy class's `prepare_plan`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evaluators.plan import Plan

if TYPE_CHECKING:
    from search.config import SearchConfig
    from storage import Store, StudyInfo

__all__ = ["Proposal", "ProposalOutcome", "Strategy", "StrategyContext"]


@dataclass
class Proposal:
    """One candidate a strategy wants measured.

    Attributes:
        method: the proposing strategy's method name (stored with the candidate).
        label: a short description stored with the candidate ("δ=0.05", "trial 7").
        plan: the plan, or None while it still has to be built on a worker (`prepare`).
        prepare: keyword arguments of the strategy class's `prepare_plan` (run on a worker).
        trial: the Optuna trial number.
    """

    method: str
    label: str
    plan: Plan | None = None
    prepare: dict[str, Any] | None = None
    trial: int | None = None


@dataclass(frozen=True)
class ProposalOutcome:
    """What a measured proposal came to: objectives (macs, fid; latency: measured seconds per
    image), or stopped at the screen, or failed."""

    macs: float | None = None
    fid: float | None = None
    latency: float | None = None
    stopped: bool = False
    failed: bool = False


@dataclass(frozen=True)
class StrategyContext:
    """What a strategy is built from: the store and study it proposes for, the search's options,
    the model's facts (`search.space.model_facts`) and the uncompressed plan."""

    store: Store
    study: StudyInfo
    store_url: str
    config: SearchConfig
    facts: dict[str, Any]
    full_plan: Plan


class Strategy(ABC):
    """A search strategy: `ask` proposals until it returns None, `tell` outcomes."""

    method: str

    @classmethod
    def create(cls, context: StrategyContext) -> Strategy:
        """The strategy for a search (what `search.methods` builds)."""
        return cls(context)  # type: ignore[call-arg]

    @abstractmethod
    def ask(self) -> Proposal | None:
        """The next proposal, or None when there is nothing more to propose."""

    @abstractmethod
    def tell(self, proposal: Proposal, outcome: ProposalOutcome) -> None:
        """The outcome of a proposal handed out by `ask`."""

    @property
    @abstractmethod
    def done(self) -> int:
        """Proposals finished so far (including those of earlier runs of the same search)."""

    @property
    @abstractmethod
    def total(self) -> int:
        """Proposals this strategy will have finished at the end of its budget."""

    def known_plans(self) -> list[Plan]:
        """The plans still to be proposed that are known now (before any measurement)."""
        return []

    def hear(self, plans: Sequence[Plan]) -> None:
        """Plans another strategy of the same search proposed (nothing by default)."""
        return None

    @classmethod
    def prepare_plan(cls, evaluator: Any, **options: Any) -> Plan:
        """On a worker: build the plan of a proposal that carries `prepare` options."""
        raise NotImplementedError(f"{cls.__name__} proposes no plans to prepare")
