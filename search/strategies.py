"""Search strategies behind one ask/tell interface: the baseline (DiTFastAttn greedy sweep for
transformers, DeepCache grid for U-Nets) and Optuna. The driver asks each strategy for proposals,
runs them on workers and tells it the outcome; a third strategy is one new class here.

Both strategies rebuild their state from the store (and Optuna's own tables in the same database)
when a search resumes, so a killed search continues where it stopped.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from evaluators.plan import Plan
from search.errors import SearchError
from search.evaluation import stored_evaluations
from storage import Store, StudyInfo, candidate_labels

GREEDY = "greedy"
OPTUNA = "optuna"
METHODS = (GREEDY, OPTUNA)
SAMPLERS = ("nsga2", "tpe", "gp")


@dataclass
class Proposal:
    """One candidate a strategy wants measured.

    Attributes:
        method: the proposing strategy's method name (stored with the candidate).
        label: a short description stored with the candidate ("δ=0.05", "trial 7").
        plan: the plan, or None while it still has to be calibrated on a worker.
        calibrate: keyword arguments of `search.greedy.greedy_plan` (greedy on transformers).
        trial: the Optuna trial number.
    """

    method: str
    label: str
    plan: Plan | None = None
    calibrate: dict[str, Any] | None = None
    trial: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What a measured proposal came to: objectives (macs, fid), or stopped at the screen, or failed."""

    macs: float | None = None
    fid: float | None = None
    stopped: bool = False
    failed: bool = False


class Strategy(ABC):
    """A search strategy: `ask` proposals until `exhausted`, `tell` outcomes."""

    method: str

    @abstractmethod
    def ask(self) -> Proposal | None:
        """The next proposal, or None when there is nothing more to propose."""

    @abstractmethod
    def tell(self, proposal: Proposal, outcome: Outcome) -> None:
        """The outcome of a proposal handed out by `ask`."""

    @property
    @abstractmethod
    def done(self) -> int:
        """Proposals finished so far (including those of earlier runs of the same search)."""

    @property
    @abstractmethod
    def total(self) -> int:
        """Proposals this strategy will have finished at the end of its budget."""


class BaselineStrategy(Strategy):
    """The paper baseline: the DiTFastAttn greedy over a sweep of thresholds δ (transformers), or
    the DeepCache branch × interval grid (U-Nets), cut to the budget by `baselines.spread`."""

    method = GREEDY

    def __init__(self, store: Store, study: StudyInfo, facts: dict[str, Any], base: Plan, *,
                 budget: int, deltas: tuple[float, ...] | None = None,
                 greedy: dict[str, Any] | None = None) -> None:
        from search.baselines import deepcache_grid, spread
        from search.greedy import DEFAULT_DELTAS

        greedy = dict(greedy or {})
        items: list[Proposal] = []
        if facts["kind"] == "unet":
            items = [Proposal(GREEDY, label, plan=plan)
                     for label, plan in deepcache_grid(facts, base)]
        else:
            # δ = 0 gives the uncompressed plan, which every study measures already (method
            # "full"): the published sweep without it, so no budget is spent on it.
            for delta in deltas or tuple(d for d in DEFAULT_DELTAS if d > 0):
                items.append(Proposal(GREEDY, f"δ={delta:g}",
                                      calibrate={"delta": float(delta), **greedy}))
        items = spread(items, budget)
        self._total = len(items)
        stored = {label: c for c in store.candidates(study.name, method=GREEDY)
                  for label in candidate_labels(c.label)}
        self._queue: deque[Proposal] = deque()
        self._done = 0
        for item in items:
            seen = stored.get(item.label)
            if seen is not None and item.calibrate is not None:
                _check_same_calibration(study, Plan.from_json(seen.plan_json), greedy)
            # measured to the end (a full pass, or stopped at the screen) by an earlier run
            if seen is not None and stored_evaluations(store, study, seen.plan_hash, screened=True):
                self._done += 1
                continue
            if seen is not None and item.plan is None:  # calibrated before the stop: no recalibration
                item.plan = Plan.from_json(seen.plan_json)
            self._queue.append(item)

    def pending_plans(self) -> list[Plan]:
        """The plans still to be measured that are known before any calibration (the grid)."""
        return [item.plan for item in self._queue if item.plan is not None]

    def ask(self) -> Proposal | None:
        return self._queue.popleft() if self._queue else None

    def tell(self, proposal: Proposal, outcome: Outcome) -> None:
        self._done += 1

    @property
    def done(self) -> int:
        return self._done

    @property
    def total(self) -> int:
        return self._total


def _check_same_calibration(study: StudyInfo, plan: Plan, greedy: dict[str, Any]) -> None:
    """A resumed greedy must calibrate as before: plans of other calibration settings would mix."""
    from search.greedy import DEFAULT_CALIBRATION_SAMPLES, DEFAULT_CALIBRATION_SEED

    wanted = {"n_calib": greedy.get("n_calib", DEFAULT_CALIBRATION_SAMPLES),
              "seed": greedy.get("seed", DEFAULT_CALIBRATION_SEED)}
    if greedy.get("window") is not None:
        wanted["window"] = greedy["window"]
    for key, value in wanted.items():
        if key in plan.notes and plan.notes[key] != value:
            option = {"n_calib": "--calib-samples", "seed": "--calib-seed", "window": "--window"}[key]
            raise SearchError(f"study '{study.name}' calibrated its greedy plans with {key}="
                              f"{plan.notes[key]}, not {value}: rerun with {option} "
                              f"{plan.notes[key]} or pass another --study")


@dataclass
class OptunaStrategy(Strategy):
    """Optuna's multi-objective search (MACs, FID) with ask/tell on its RDB storage.

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
    method: str = OPTUNA
    _resumed: deque[Proposal] = field(default_factory=deque)

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
        seed = self.seed + len(self.optuna.get_trials(deepcopy=False))
        self.optuna.sampler = _sampler(self.sampler, self.budget, seed)
        with warnings.catch_warnings():  # experimental in Optuna 4: names for optuna-dashboard
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.optuna.set_metric_names(["macs_per_image", "fid"])
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

    def ask(self) -> Proposal | None:
        if self._resumed:
            return self._resumed.popleft()
        if self._count() >= self.budget:
            return None
        trial = self.optuna.ask()
        plan = self.space.suggest(trial)
        trial.set_user_attr("plan_hash", plan.content_hash())
        return Proposal(OPTUNA, f"trial {trial.number}", plan=plan, trial=trial.number)

    def tell(self, proposal: Proposal, outcome: Outcome) -> None:
        import optuna

        state = optuna.trial.TrialState
        if outcome.failed:
            self.optuna.tell(proposal.trial, state=state.FAIL)
        elif outcome.stopped or outcome.fid is None or not math.isfinite(outcome.fid):
            self.optuna.tell(proposal.trial, state=state.PRUNED)
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
