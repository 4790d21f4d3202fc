"""Optuna's multi-objective search (MACs or measured latency, FID) as a strategy: ask/tell on its
RDB storage, in the store's own database."""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evaluators.plan import Plan
from search.strategies import Proposal, ProposalOutcome, Strategy, StrategyContext

OPTUNA = "optuna"
SAMPLERS = ("nsga2", "tpe", "gp")


@dataclass
class OptunaStrategy(Strategy):
    """Optuna's multi-objective search (MACs, FID) with ask/tell on its RDB storage; with
    `objective="latency"`, (latency ratio, FID): the measured latency per image over the full
    model's (`full_latency`).

    The Optuna study lives in the same database as the store (its own tables), named
    `edgediff:<study>`, so optuna-dashboard opens it too. Trials left RUNNING by a killed search
    are proposed again with their own parameters and trial number; the baseline's plans are
    enqueued as their nearest point of the space (at most `max_seeds` of them).
    """

    store_url: str
    study_name: str
    space: Any
    budget: int
    sampler: str = "nsga2"
    seed: int = 0
    max_seeds: int | None = None
    full_hash: str | None = None
    objective: str = "macs"
    full_latency: float | None = None
    method: str = OPTUNA
    _resumed: deque[Proposal] = field(default_factory=deque)

    @classmethod
    def create(cls, context: StrategyContext) -> OptunaStrategy:
        from search.space import make_space

        config = context.config
        objective = getattr(config, "objective", "macs")
        full = context.store.full_model_point(context.study) if objective == "latency" else None
        return cls(context.store_url, context.study.name,
                   make_space(context.facts, context.full_plan), config.budget,
                   sampler=config.sampler, seed=config.seed, max_seeds=config.max_seeds,
                   full_hash=context.full_plan.content_hash(), objective=objective,
                   full_latency=None if full is None else full.latency)

    def __post_init__(self) -> None:
        import optuna

        # ERROR: Optuna's warnings while the store's database goes away (its SQL, "falling back")
        # would bury the search's own one-line error.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self.optuna = optuna.create_study(
            study_name=f"edgediff:{self.study_name}", storage=_optuna_storage(self.store_url),
            directions=["minimize", "minimize"], load_if_exists=True,
        )
        # A resumed search must not draw the points of its first run again: the sampler's seed
        # moves on with the trials already in the study.
        seed = (self.seed + len(self.optuna.get_trials(deepcopy=False))) % 2**32  # numpy's range
        self.optuna.sampler = _sampler(self.sampler, self.budget, seed)
        with warnings.catch_warnings():  # experimental in Optuna 4: names for optuna-dashboard
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            cost = "macs_per_image" if self.objective == "macs" else "latency_ratio"
            self.optuna.set_metric_names([cost, "fid"])
        state = optuna.trial.TrialState
        for frozen in self.optuna.get_trials(deepcopy=False, states=(state.RUNNING,)):
            # A trial the stopped run left RUNNING continues under its own number: parameters it
            # drew come back as they were, any it had not drawn yet are drawn now.
            trial = optuna.trial.Trial(self.optuna, frozen._trial_id)
            plan = self.space.suggest(trial)
            trial.set_user_attr("plan_hash", plan.content_hash())
            self._resumed.append(Proposal(OPTUNA, f"trial {frozen.number}", plan=plan,
                                          trial=frozen.number))
        if self.max_seeds is None:
            self.max_seeds = max(1, self.budget // 3)
        self._seeds = 0

    def _count(self) -> int:
        """Trials asked so far (enqueued ones still waiting are not counted)."""
        import optuna

        state = optuna.trial.TrialState
        return len(self.optuna.get_trials(
            deepcopy=False, states=(state.RUNNING, state.COMPLETE, state.PRUNED, state.FAIL)))

    def seed_with(self, plan: Plan) -> None:
        """Enqueue a baseline plan (its nearest point of the space) as a trial to run early; the
        uncompressed plan (the greedy at δ = 0) is measured already and teaches nothing. Nothing is
        enqueued once the budget is spoken for, so no trial is left waiting at the end."""
        import optuna

        if self._seeds >= (self.max_seeds or 0) or plan.content_hash() == self.full_hash:
            return
        waiting = (optuna.trial.TrialState.WAITING,)
        queued = len(self.optuna.get_trials(deepcopy=False, states=waiting))
        if self._count() + queued >= self.budget:
            return
        self.optuna.enqueue_trial(self.space.params_of(plan), skip_if_exists=True)
        self._seeds += len(self.optuna.get_trials(deepcopy=False, states=waiting)) - queued

    def hear(self, plans: Sequence[Plan]) -> None:
        """Another strategy's plans as seeds: an evenly spread few that span their cost range
        (a grid comes most expensive first), not its first ones."""
        from search.baselines import spread

        for plan in spread(plans, self.max_seeds or 0):
            self.seed_with(plan)

    def ask(self) -> Proposal | None:
        if self._resumed:
            return self._resumed.popleft()
        if self._count() >= self.budget:
            return None
        trial = self.optuna.ask()
        plan = self.space.suggest(trial)
        trial.set_user_attr("plan_hash", plan.content_hash())
        return Proposal(OPTUNA, f"trial {trial.number}", plan=plan, trial=trial.number)

    def tell(self, proposal: Proposal, outcome: ProposalOutcome) -> None:
        import optuna

        state = optuna.trial.TrialState
        if outcome.failed:
            self.optuna.tell(proposal.trial, state=state.FAIL)
        elif outcome.stopped or outcome.fid is None or not math.isfinite(outcome.fid):
            self.optuna.tell(proposal.trial, state=state.PRUNED)
        elif self.objective == "latency":
            if outcome.latency is None:
                self.optuna.tell(proposal.trial, state=state.FAIL)
                return
            ratio = outcome.latency / (self.full_latency or 1.0)  # the full model's latency = 1
            self.optuna.tell(proposal.trial, [float(ratio), float(outcome.fid)])
        else:
            self.optuna.tell(proposal.trial, [float(outcome.macs), float(outcome.fid)])

    @property
    def done(self) -> int:
        import optuna

        state = optuna.trial.TrialState
        return len(self.optuna.get_trials(deepcopy=False,
                                          states=(state.COMPLETE, state.PRUNED, state.FAIL)))

    @property
    def total(self) -> int:
        return max(self.budget, self._count())


def _optuna_storage(url: str) -> Any:
    import optuna

    return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))


def _engine_kwargs(url: str) -> dict[str, Any]:
    """The store's own connection options (busy and connect timeouts), so that Optuna's tables
    wait for a locked or absent database exactly as long as the store does."""
    from storage.engine import store_connect_args

    kwargs: dict[str, Any] = {"connect_args": store_connect_args(url)}
    if not url.startswith("sqlite"):
        kwargs["pool_pre_ping"] = True
    return kwargs


def _sampler(name: str, budget: int, seed: int) -> Any:
    import optuna

    if name == "nsga2":
        # A population that fits the budget: a few generations even for small budgets.
        population = max(4, min(50, budget // 3))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, budget // 4)))
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=max(2, min(10, budget // 4)))
    raise ValueError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}")
