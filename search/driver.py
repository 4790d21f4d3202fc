"""The search driver: the baseline and Optuna side by side, candidates evaluated on Ray workers.

    result = run_search(SearchConfig(study="dit", model="digits-dit", spec=EvalSpec(), budget=10))

1. A `reference` job measures the uncompressed model on a worker; the run goes into Ray's object
   store, so every later job on any node scores against the same images.
2. The study is opened (or resumed) in the store and the uncompressed plan stored as method "full".
3. Each strategy (`strategies.py`) is asked for proposals; the driver keeps `workers` jobs in flight
   (one Ray task each, one GPU on a pool or a share of the CPUs here, retried if its worker dies)
   and records every result in the store as it arrives, then tells the strategy.
4. Nothing is measured twice: a plan already evaluated under the study's measurement hash (by any
   study or method, or by a killed earlier run) is taken from the store, and a plan another strategy
   is measuring right now waits for that measurement.

Stopping (Ctrl-C, `kill -9`, the wall-clock limit) loses nothing that finished: results are in
the store as they arrive, Optuna's trials in its own tables of the same database; running the same
search again continues from there.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from evaluators.defaults import DEFAULT_CACHE_DIR
from evaluators.plan import Plan
from evaluators.spec import EvalSpec
from search.errors import SearchError
from search.evaluation import record_failure, samples_record, stored_evaluations, to_record
from search.strategies import (
    GREEDY,
    OPTUNA,
    BaselineStrategy,
    OptunaStrategy,
    Outcome,
    Proposal,
    Strategy,
)
from search.tasks import Job, remote_runner
from storage import (
    FULL_METHOD,
    Point,
    Store,
    StoreError,
    StudyInfo,
    check_study_name,
    find_existing_study,
    normalized_hypervolume,
    reference_point,
    resolve_url,
)
from storage.engine import first_line
from storage.url import redact


@dataclass(frozen=True)
class SearchConfig:
    """One search.

    Attributes:
        study: the study name (a search with the same name resumes it).
        model: registry name, local folder or hub id.
        spec: the evaluation spec (images, steps, guidance, reference set, ...).
        methods: "greedy" (the paper baseline) and/or "optuna".
        budget: evaluations per method (the baseline stops earlier when its sweep is smaller).
        workers: evaluations in flight at once (Ray tasks).
        time_limit_s: stop dispatching and end after this many seconds (None: no limit).
        address: a Ray cluster to join ("auto" or host:port); None starts a local Ray.
        db_url: the store (None: $EDGEDIFF_DB or the default SQLite file).
        sampler: Optuna sampler: "nsga2", "tpe" or "gp".
        seed: the sampler's seed.
        device: torch device on the workers; "cuda" asks Ray for `gpus_per_worker` GPUs per task.
        threads: torch CPU threads per task (None: the CPUs divided among the workers).
        gpus_per_worker: GPUs per task (default 1 when device is cuda, else 0).
        cache_dir: where workers cache the uncompressed model's run.
        deltas: the greedy's thresholds (None: the published sweep).
        greedy: other `greedy_plan` options (n_calib, seed, window).
        max_seeds: baseline plans enqueued into Optuna (None: a third of the budget).
        max_retries: Ray retries of a task whose worker died.
    """

    study: str
    model: str
    spec: EvalSpec
    methods: tuple[str, ...] = (GREEDY, OPTUNA)
    budget: int = 10
    workers: int = 1
    time_limit_s: float | None = None
    address: str | None = None
    db_url: str | None = None
    sampler: str = "nsga2"
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    gpus_per_worker: float | None = None
    cache_dir: str | None = DEFAULT_CACHE_DIR
    deltas: tuple[float, ...] | None = None
    greedy: dict[str, Any] = field(default_factory=dict)
    max_seeds: int | None = None
    max_retries: int = 2


@dataclass(frozen=True)
class MethodSummary:
    """One method's result: its candidates' front and the front's hypervolume."""

    method: str
    done: int
    front: list[Point]
    hypervolume: float


@dataclass(frozen=True)
class SearchResult:
    """What a search (or this run of a resumed one) did."""

    study: str
    full: Point | None
    methods: dict[str, MethodSummary]
    reference_point: tuple[float, float] | None
    measured: int
    reused: int
    failed: int
    seconds: float
    loop_seconds: float  # after the uncompressed model's run: the candidates' share of `seconds`
    stopped: str  # "finished" or "time limit"


@dataclass
class _Pending:
    kind: str  # "calibrate" or "evaluate"
    proposal: Proposal
    strategy: Strategy
    plan_hash: str | None = None


def hypervolumes(store: Store, study: str, done: dict[str, int]) -> tuple[
        Point | None, tuple[float, float] | None, dict[str, MethodSummary]]:
    """Each method's (the keys of `done`: method -> proposals finished) front and hypervolume
    against one reference point (`storage.reference_point`: the full model's MACs and twice its
    FID), in units of the full model."""
    full = store.full_model_point(study)
    out = {}
    for method, finished in done.items():
        front = store.front(study, method=method)
        out[method] = MethodSummary(method, finished, front, normalized_hypervolume(front, full))
    return full, reference_point(full), out


class _Search:
    """One run of a search: the loop of `run_search`."""

    def __init__(self, config: SearchConfig, url: str, report: Callable[[str], None]) -> None:
        self.config, self.url, self.report = config, url, report
        self.inflight: dict[Any, _Pending] = {}
        self.followers: dict[str, list[tuple[Proposal, Strategy]]] = {}
        self.strategies: list[Strategy] = []
        self.measured = self.reused = self.failed = 0
        self.started = time.monotonic()
        self._fronts: str | None = None

    # --- set-up ---------------------------------------------------------------------------------
    def measure_reference(self, existing: StudyInfo | None) -> None:
        """The uncompressed model's run, on a worker, before anything is written to the store."""
        import ray

        config = self.config
        threads = config.threads or max(1, (os.cpu_count() or 1) // max(1, config.workers))
        gpus = config.gpus_per_worker
        if gpus is None:
            gpus = 1.0 if config.device.startswith("cuda") else 0.0
        cpus = threads if gpus == 0 else 1
        _check_resources(config, cpus, gpus)
        self.runner = remote_runner(num_cpus=cpus, num_gpus=gpus, max_retries=config.max_retries)
        self.job = dict(model=config.model, spec_json=config.spec.to_json(), device=config.device,
                        threads=threads, cache_dir=config.cache_dir)
        self.report(f"measuring the uncompressed model ({config.spec.num_images} images) on a worker")
        out = self._get(self.runner.remote(Job("reference", **self.job)), "the uncompressed model")
        if existing is not None and existing.spec_hash != out["spec_hash"]:
            raise SearchError(
                f"study '{config.study}' was measured under another spec, model weights, device "
                "type or feature network: rerun with the options it was created with, or pass "
                "another --study name")
        self.reference_out = out
        self.reference = ray.put(out["reference"])
        self.full_plan = Plan.from_json(out["full_plan"])
        self.facts = out["facts"]

    def open(self, store: Store) -> None:
        """Open (or resume) the study, store the uncompressed plan, build the strategies."""
        config, out = self.config, self.reference_out
        self.store = store
        self.study, _ = store.get_or_create_study(
            config.study, model=config.model, spec_json=config.spec.to_json(),
            spec_hash=out["spec_hash"], model_fingerprint=self.full_plan.model.fingerprint,
            method="+".join(config.methods))
        self._record(self.full_plan, FULL_METHOD, "uncompressed",
                     {"evaluations": [out["reference"].measurement.to_dict()]}, out["worker"])
        self.strategies = self._strategies()

    def _strategies(self) -> list[Strategy]:
        config, out = self.config, []
        self.baseline: BaselineStrategy | None = None
        self.optuna: OptunaStrategy | None = None
        if GREEDY in config.methods:
            self.baseline = BaselineStrategy(self.store, self.study, self.facts, self.full_plan,
                                             budget=config.budget, deltas=config.deltas,
                                             greedy=config.greedy)
            out.append(self.baseline)
        if OPTUNA in config.methods:
            from search.space import make_space

            self.optuna = OptunaStrategy(self.url, config.study,
                                         make_space(self.facts, self.full_plan), config.budget,
                                         sampler=config.sampler, seed=config.seed,
                                         max_seeds=config.max_seeds,
                                         full_hash=self.full_plan.content_hash())
            out.append(self.optuna)
            if self.baseline is not None:  # grid plans are known now; greedy plans when calibrated
                from search.baselines import spread

                # seeds that span the grid's cost range, not its first (costliest) plans
                for item in spread(self.baseline.pending_plans(), self.optuna.max_seeds or 0):
                    self.optuna.seed_with(item)
        return out

    # --- the loop -------------------------------------------------------------------------------
    def run(self) -> str:
        import ray

        exhausted: set[int] = set()
        turn = 0
        while True:
            if self._timed_out():
                return "time limit"
            while len(self.inflight) < self.config.workers and len(exhausted) < len(self.strategies):
                index = turn % len(self.strategies)
                turn += 1
                if index in exhausted:
                    continue
                proposal = self.strategies[index].ask()
                if proposal is None:
                    exhausted.add(index)
                    continue
                self._dispatch(proposal, self.strategies[index])
            if not self.inflight:  # every strategy is exhausted (else the slots would be full)
                return "finished"
            ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=1.0)
            for ref in ready:
                self._handle(ref, self.inflight.pop(ref))
            self.report(self.status(refresh=bool(ready)))

    def _timed_out(self) -> bool:
        limit = self.config.time_limit_s
        return limit is not None and time.monotonic() - self.started >= limit

    def _dispatch(self, proposal: Proposal, strategy: Strategy) -> None:
        if proposal.plan is None:  # the greedy on a transformer: calibrate on a worker first
            job = Job("calibrate", greedy=dict(proposal.calibrate or {}), **self.job)
            self.inflight[self.runner.remote(job, self.reference)] = _Pending(
                "calibrate", proposal, strategy)
            return
        plan = proposal.plan
        plan_hash = plan.content_hash()
        stored = stored_evaluations(self.store, self.study, plan_hash,
                                    screened=bool(self.config.spec.screen_images))
        if stored is not None:
            self._add_candidate(plan, proposal)
            self.reused += 1
            strategy.tell(proposal, _outcome(stored[-1]))
            return
        if plan_hash in self.followers:  # being measured for another proposal: wait for it
            self.followers[plan_hash].append((proposal, strategy))
            return
        self.followers[plan_hash] = []
        job = Job("evaluate", plan_json=plan.to_json(), **self.job)
        self.inflight[self.runner.remote(job, self.reference)] = _Pending(
            "evaluate", proposal, strategy, plan_hash)

    def _handle(self, ref: Any, pending: _Pending) -> None:
        proposal, strategy = pending.proposal, pending.strategy
        try:
            out = _ray_get(ref)
        except Exception as err:  # noqa: BLE001 - the task failed past its retries
            if pending.kind == "calibrate":
                self.failed += 1
                self.report(f"{proposal.method} {proposal.label}: calibration failed: {_first(err)}")
                strategy.tell(proposal, Outcome(failed=True))
                return
            out = {"evaluations": [], "error": _first(err), "failed_stage": "full",
                   "failed_images": self.config.spec.num_images, "device": self.config.device,
                   "worker": "ray"}
        if pending.kind == "calibrate":
            plan = Plan.from_json(out["plan"])
            proposal.plan = plan
            self._add_candidate(plan, proposal)
            if self.optuna is not None and strategy is self.baseline:
                self.optuna.seed_with(plan)
            self._dispatch(proposal, strategy)
            return
        assert proposal.plan is not None
        outcome = self._record(proposal.plan, proposal.method, proposal.label, out,
                               out.get("worker"))
        self.measured += 1
        self.failed += outcome.failed
        strategy.tell(proposal, outcome)
        for other, other_strategy in self.followers.pop(pending.plan_hash or "", []):
            self._add_candidate(proposal.plan, other)
            other_strategy.tell(other, outcome)

    def _add_candidate(self, plan: Plan, proposal: Proposal) -> None:
        """The plan as a candidate of the proposal's method, with the proposal's label among its
        labels (two greedy thresholds giving one plan are both recorded, so a resumed search
        calibrates neither again)."""
        plan_hash = plan.content_hash()
        self.store.add_candidate(self.study.name, plan_json=plan.to_json(), plan_hash=plan_hash,
                                 method=proposal.method, label=proposal.label)
        self.store.add_candidate_label(self.study.name, plan_hash=plan_hash,
                                       method=proposal.method, label=proposal.label)

    def _record(self, plan: Plan, method: str, label: str | None, out: dict[str, Any],
                worker: str | None) -> Outcome:
        """Store a job's evaluations (each with its candidate, in one transaction) and its failure."""
        from evaluators.results import Measurement

        last = None
        for data in out.get("evaluations", []):
            result = Measurement.from_dict(data)
            _, last = self.store.record_candidate_evaluation(
                self.study.name, plan_json=plan.to_json(), plan_hash=plan.content_hash(),
                method=method, label=label, record=to_record(result, worker),
                samples=samples_record(result))
        if out.get("error"):
            started = out.get("started_at")
            record_failure(self.store, self.study, plan, method=method, label=label,
                           stage=out["failed_stage"], num_images=out["failed_images"],
                           error=out["error"], device=out.get("device", self.config.device),
                           started=datetime.fromisoformat(started) if started
                           else datetime.now(timezone.utc), worker=worker)
            self.report(f"{method} {label}: evaluation failed: {out['error'].splitlines()[-1]}")
            return Outcome(failed=True)
        return _outcome(last) if last is not None else Outcome(failed=True)

    def _get(self, ref: Any, what: str) -> dict[str, Any]:
        try:
            return _ray_get(ref)
        except Exception as err:  # noqa: BLE001 - one line for the user
            raise SearchError(f"{what} could not be measured: {_first(err)}") from None

    # --- reporting ------------------------------------------------------------------------------
    def status(self, refresh: bool = True) -> str:
        """The progress line: per method, finished/total, front size and hypervolume so far."""
        if refresh or self._fronts is None:  # the store is read only after a result came in
            parts = []
            _, _, summaries = hypervolumes(self.store, self.study.name, self.done())
            for s in self.strategies:
                summary = summaries[s.method]
                parts.append(f"{s.method} {summary.done}/{s.total} front {len(summary.front)} "
                             f"HV {summary.hypervolume:.3f}")
            self._fronts = " | ".join(parts)
        elapsed = _clock(time.monotonic() - self.started)
        return f"{elapsed} | {self._fronts} | running {len(self.inflight)}"

    def done(self) -> dict[str, int]:
        """Proposals finished per method (earlier runs of the same search included)."""
        return {s.method: s.done for s in self.strategies}

    def cancel(self) -> None:
        import ray

        for ref in list(self.inflight):
            ray.cancel(ref, force=True)
        self.inflight.clear()


def run_search(config: SearchConfig, report: Callable[[str], None] | None = None) -> SearchResult:
    """Run (or resume) a search; `report` receives progress lines.

    Every input problem (an unreachable store, an unknown model, a study of another model or
    spec, resources Ray does not have) raises before anything is written to the store.
    """
    import ray

    _check(config)
    report = report or (lambda line: None)
    url = resolve_url(config.db_url)
    existing = _existing_study(url, config)
    started_ray = _start_ray(config)
    search = _Search(config, url, report)
    try:
        search.measure_reference(existing)
        with Store.open(url) as store:
            search.open(store)
            loop_started = time.monotonic()
            stopped = search.run()
            loop_seconds = time.monotonic() - loop_started
            search.cancel()
            full, reference, methods = hypervolumes(store, config.study, search.done())
    except _store_failures() as err:
        raise SearchError(f"the store {redact(url)} stopped answering ({first_line(err)}); the search "
                          "stopped, keeping every result recorded before; run the same command "
                          "again once the database is back to resume") from None
    finally:
        search.cancel()
        if started_ray:
            ray.shutdown()
    return SearchResult(config.study, full, methods, reference, search.measured, search.reused,
                        search.failed, time.monotonic() - search.started, loop_seconds, stopped)


def _store_failures() -> tuple[type[BaseException], ...]:
    """What a database that goes away mid-search raises: through the store, SQLAlchemy's errors
    (a locked SQLite file past its busy timeout, a stopped server); through Optuna's storage, its
    own wrapper of them."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import DBAPIError

    return DBAPIError, StorageInternalError


def _existing_study(url: str, config: SearchConfig) -> StudyInfo | None:
    """The study if the store already has it; an unreachable store fails here, and a store that
    does not exist yet is not created."""
    existing = find_existing_study(url, config.study)
    if existing is not None and existing.model != config.model:
        raise SearchError(f"study '{config.study}' searches {existing.model}, not "
                          f"{config.model}: pass --model {existing.model} or another --study")
    return existing


def _check_resources(config: SearchConfig, cpus: float, gpus: float) -> None:
    """A task asking for more than the cluster has would wait forever: say so instead."""
    import ray

    total = ray.cluster_resources()
    have_cpus, have_gpus = total.get("CPU", 0), total.get("GPU", 0)
    if gpus > have_gpus:
        raise SearchError(f"--device {config.device} asks for {gpus:g} GPU per task but the Ray "
                          f"cluster has {have_gpus:g}: use --device cpu, or --address a cluster "
                          "with GPUs")
    if cpus > have_cpus:
        raise SearchError(f"each task asks for {cpus:g} CPUs (--threads) but the Ray cluster has "
                          f"{have_cpus:g}: lower --threads")


def _check(config: SearchConfig) -> None:
    from search.strategies import METHODS, SAMPLERS

    unknown = [m for m in config.methods if m not in METHODS]
    if not config.methods or unknown:
        raise SearchError(f"unknown search method {unknown[0] if unknown else '(none)'}: choose "
                          f"greedy, optuna or both")
    if config.sampler not in SAMPLERS:
        raise SearchError(f"unknown sampler '{config.sampler}': choose {', '.join(SAMPLERS)}")
    if config.budget < 1 or config.workers < 1:
        raise SearchError("--budget and --workers must be at least 1")
    if config.time_limit_s is not None and config.time_limit_s <= 0:
        raise SearchError("--time-limit must be a positive number of seconds")
    if any(d < 0 for d in config.deltas or ()):
        raise SearchError("greedy thresholds (--deltas) must be >= 0")
    try:
        check_study_name(config.study)
    except StoreError as err:
        raise SearchError(str(err)) from None


def _start_ray(config: SearchConfig) -> bool:
    """Join the cluster at `config.address`, or start a local Ray; False if one was running."""
    import ray

    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.ERROR)  # start-up notices would break the progress line
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    try:
        if config.address:
            ray.init(address=config.address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False,
                     logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = config.address or "a local Ray"
        raise SearchError(f"could not start or join Ray at {where} ({_first(err)}): check the "
                          "address (ray status on the head node), or leave --address out") from None
    return True


def _ray_get(ref: Any) -> dict[str, Any]:
    import ray

    return ray.get(ref)


def _outcome(info: Any) -> Outcome:
    if info.status != "ok":
        return Outcome(failed=True)
    if info.stage == "screen":
        return Outcome(macs=info.macs_per_image, stopped=True)
    return Outcome(macs=info.macs_per_image, fid=info.fid)


def _first(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    lines = [line for line in text if line.strip()]
    return lines[-1] if lines else type(err).__name__


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"
