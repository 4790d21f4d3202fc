"""The search driver: the registered search methods side by side, candidates evaluated on Ray
workers.

    result = run_search(SearchConfig(study="dit", model="digits-dit", spec=EvalSpec(), budget=10))

1. A `reference` job measures the uncompressed model on a worker; the run goes into Ray's object
   store, so every later job on any node scores against the same images.
2. The study is opened (or resumed) in the store and the uncompressed plan stored as method "full".
3. Each method's strategy (`search.methods`, `search.strategies`) is asked for proposals; the driver
   keeps `workers` jobs in flight (one Ray task each, one GPU on a pool or a share of the CPUs here,
   retried if its worker dies) and records every result in the store as it arrives, then tells the
   strategy. Plans one strategy knows are heard by the others (Optuna is seeded with them).
4. Nothing is measured twice: a plan already evaluated under the study's measurement hash (by any
   study or method, or by a killed earlier run) is taken from the store, and a plan another strategy
   is measuring right now waits for that measurement.
5. With rungs (`search.rungs`), a plan is measured on few images first and goes on to more only
   while it ranks among the best of its rung (asynchronous successive halving).

Stopping (Ctrl-C, `kill -9`, the wall-clock limit) loses nothing that finished: results are in
the store as they arrive, Optuna's trials in its own tables of the same database; running the same
search again continues from there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from evaluators.errors import EvaluatorError
from evaluators.plan import Plan
from search.cluster import check_resources, last_line, ray_get, start_ray
from search.config import SearchConfig, check_config, resolve_methods
from search.errors import SearchError
from search.evaluation import record_failure, samples_record, stored_evaluations, to_record
from search.lease import StudyLease, check_free
from search.methods import search_method
from search.rungs import Ladder, RungSteps, rebuild
from search.strategies import Proposal, ProposalOutcome, Strategy, StrategyContext
from search.summary import MethodSummary, SearchResult, hypervolumes
from search.tasks import Failure, Job, MeasuredPlan, ReferenceRun, remote_runner
from storage import (
    FULL_METHOD,
    Store,
    StoreError,
    StudyInfo,
    check_same_study,
    find_existing_study,
    resolve_url,
    study_cost,
)
from storage.engine import first_line
from storage.url import redact

__all__ = ["MethodSummary", "SearchConfig", "SearchResult", "hypervolumes", "run_search"]


@dataclass
class _Pending:
    kind: str  # "prepare" or "evaluate"
    proposal: Proposal
    strategy: Strategy
    plan_hash: str | None = None
    rung: int = 0  # kind "rung": which lower rung


class _Search(RungSteps):
    """One run of a search: the loop of `run_search` (the rungs' steps in `search.rungs`)."""

    def __init__(self, config: SearchConfig, url: str, report: Callable[[str], None]) -> None:
        self.config, self.url, self.report = config, url, report
        self.held: StudyLease | None = None  # the study's lease, from the first write on
        self.inflight: dict[Any, _Pending] = {}
        self.followers: dict[str, list[tuple[Proposal, Strategy]]] = {}
        self.strategies: list[Strategy] = []
        self.measured = self.reused = self.failed = 0
        self.started = time.monotonic()
        self._fronts: str | None = None
        self.ladder = Ladder(config.rungs, config.keep) if config.rungs else None
        self.climbing = {}

    # --- set-up ---------------------------------------------------------------------------------
    def measure_reference(self, existing: StudyInfo | None) -> None:
        """The uncompressed model's run, on a worker, before anything is written to the store;
        the methods resolved for the model's family."""
        import ray

        config = self.config
        threads = config.threads or max(1, (os.cpu_count() or 1) // max(1, config.workers))
        gpus = config.gpus_per_worker
        if gpus is None:
            gpus = 1.0 if config.device.startswith("cuda") else 0.0
        cpus = threads if gpus == 0 else 1
        check_resources(config.device, cpus, gpus)
        self.runner = remote_runner(num_cpus=cpus, num_gpus=gpus, max_retries=config.max_retries)
        self.job = dict(model=config.model, spec=config.spec, device=config.device,
                        threads=threads, cache_dir=config.cache_dir)
        self.report(f"measuring the uncompressed model ({config.spec.num_images} images) on a worker")
        run: ReferenceRun = self._get(self.runner.remote(Job("reference", **self.job)),
                                      "the uncompressed model")
        if existing is not None:
            _same_study(existing, spec_hash=run.spec_hash)
        self.methods = resolve_methods(config, run.facts.get("method_family", run.facts["kind"]))
        self.report(f"methods for this {run.facts['kind']}: {' + '.join(self.methods)}")
        self.run_reference = run
        self.reference = ray.put(run.reference)

    def open(self, store: Store) -> None:
        """Open (or resume) the study, store the uncompressed plan, build the strategies and let
        each hear the plans the others know already."""
        config, run = self.config, self.run_reference
        self.store = store
        self.study, _ = store.get_or_create_study(
            config.study, model=config.model, spec_json=config.spec.to_json(),
            spec_hash=run.spec_hash, model_fingerprint=run.full_plan.model.fingerprint,
            objectives=(config.objective, config.spec.quality), method="+".join(self.methods))
        self._record(run.full_plan, FULL_METHOD, "uncompressed",
                     MeasuredPlan(run.worker, (run.reference.measurement,)))
        context = StrategyContext(store, self.study, self.url, config, run.facts, run.full_plan)
        self.strategies = [search_method(name).strategy_class().create(context)
                           for name in self.methods]
        for strategy in self.strategies:
            self._share(strategy, strategy.known_plans())
        if self.ladder is not None:  # a resumed search: the rungs measured before
            rebuild(self.ladder, store, self.study, config.objective)

    def _share(self, source: Strategy, plans: list[Plan]) -> None:
        for other in self.strategies:
            if other is not source and plans:
                other.hear(plans)

    # --- the loop -------------------------------------------------------------------------------
    def run(self) -> str:
        import ray

        exhausted: set[int] = set()
        turn = 0
        while True:
            if self._timed_out():
                return "time limit"
            if self.held is not None and self.held.lost:
                raise SearchError(f"study '{self.config.study}' was taken over by another search "
                                  "(this one's lease went stale): this search stopped; what it "
                                  "finished is stored")
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
                if self.ladder is not None and self._stop_climbing():
                    continue  # the plans no rung promoted were told: ask once more
                return "finished"
            ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=1.0)
            for ref in ready:
                self._handle(ref, self.inflight.pop(ref))
            self.report(self.status(refresh=bool(ready)))

    def _timed_out(self) -> bool:
        limit = self.config.time_limit_s
        return limit is not None and time.monotonic() - self.started >= limit

    def _dispatch(self, proposal: Proposal, strategy: Strategy) -> None:
        if proposal.plan is None:  # the strategy builds the plan on a worker first
            job = Job("prepare", method=proposal.method, options=dict(proposal.prepare or {}),
                      **self.job)
            self.inflight[self.runner.remote(job, self.reference)] = _Pending(
                "prepare", proposal, strategy)
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
        if self.ladder is not None:  # the rungs first (search.rungs)
            self.climbing[plan_hash] = (proposal, strategy, plan)
            self._enter(plan_hash, 0)
            return
        self._send_full(proposal, strategy, plan)

    def _send_full(self, proposal: Proposal, strategy: Strategy, plan: Plan) -> None:
        self._submit(Job("evaluate", plan=plan, **self.job), "evaluate", proposal, strategy,
                     plan.content_hash())

    def _submit(self, job: Job, kind: str, proposal: Proposal, strategy: Strategy,
                plan_hash: str | None = None, rung: int = 0) -> None:
        self.inflight[self.runner.remote(job, self.reference)] = _Pending(
            kind, proposal, strategy, plan_hash, rung)

    def _handle(self, ref: Any, pending: _Pending) -> None:
        proposal, strategy = pending.proposal, pending.strategy
        try:
            out = ray_get(ref)
        except Exception as err:  # noqa: BLE001 - the task failed past its retries
            if pending.kind == "prepare":
                self.failed += 1
                self.report(f"{proposal.method} {proposal.label}: preparing the plan failed: "
                            f"{last_line(err)}")
                strategy.tell(proposal, ProposalOutcome(failed=True))
                return
            out = MeasuredPlan("ray", failure=Failure(
                last_line(err), "full", self.config.spec.num_images, self.config.device,
                datetime.now(timezone.utc)))
        if pending.kind == "rung":
            self._rung_measured(pending, out)
            return
        if pending.kind == "prepare":
            proposal.plan = out.plan
            self._add_candidate(out.plan, proposal)
            self._share(strategy, [out.plan])
            self._dispatch(proposal, strategy)
            return
        assert proposal.plan is not None
        outcome = self._record(proposal.plan, proposal.method, proposal.label, out)
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
        self.store.add_candidate(self.study, plan_json=plan.to_json(), plan_hash=plan_hash,
                                 method=proposal.method, label=proposal.label)
        self.store.add_candidate_label(self.study, plan_hash=plan_hash,
                                       method=proposal.method, label=proposal.label)

    def _record(self, plan: Plan, method: str, label: str | None,
                out: MeasuredPlan) -> ProposalOutcome:
        """Store a job's measurements (each with its candidate, in one transaction) and its failure."""
        last = None
        for result in out.measurements:
            _, last = self.store.record_candidate_evaluation(
                self.study, plan_json=plan.to_json(), plan_hash=plan.content_hash(),
                method=method, label=label, record=to_record(result, out.worker),
                samples=samples_record(result))
        failure = out.failure
        if failure is not None:
            record_failure(self.store, self.study, plan, method=method, label=label,
                           stage=failure.stage, num_images=failure.num_images,
                           error=failure.error, device=failure.device,
                           started=failure.started_at, worker=out.worker)
            self.report(f"{method} {label}: evaluation failed: {failure.error.splitlines()[-1]}")
            return ProposalOutcome(failed=True)
        return _outcome(last) if last is not None else ProposalOutcome(failed=True)

    def _get(self, ref: Any, what: str) -> Any:
        try:
            return ray_get(ref)
        except Exception as err:  # noqa: BLE001 - one line for the user
            raise SearchError(f"{what} could not be measured: {last_line(err)}") from None

    # --- reporting ------------------------------------------------------------------------------
    def status(self, refresh: bool = True) -> str:
        """The progress line: per method, finished/total, front size and hypervolume so far."""
        if refresh or self._fronts is None:  # the store is read only after a result came in
            parts = []
            _, _, summaries = hypervolumes(self.store, self.study, self.done())
            for s in self.strategies:
                summary = summaries[s.method]
                parts.append(f"{s.method} {summary.done}/{s.total} front {len(summary.front)} "
                             f"HV {summary.hypervolume:.3f}")
            self._fronts = " | ".join(parts)
        elapsed = _clock(time.monotonic() - self.started)
        return f"{elapsed} | {self._fronts}{self.rung_counts()} | running {len(self.inflight)}"

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
    spec, a method for another model family, resources Ray does not have, a study another search
    drives) raises before anything is written to the store.
    """
    import ray

    from evaluators.subjects import check_drivable

    check_config(config)
    try:  # an unknown model, or a family no subject drives (Qwen-Image, Wan): before Ray starts
        check_drivable(config.model)
    except EvaluatorError as err:
        raise SearchError(last_line(err)) from None
    report = report or (lambda line: None)
    url = resolve_url(config.db_url)
    existing = find_existing_study(url, config.study)  # an unreachable store fails here
    if existing is not None:
        _same_study(existing, model=config.model)
        check_objective(existing, config.objective)
    check_free(url, config.study, ttl_s=config.lease_ttl_s)  # a study another search drives: refused now
    started_ray = start_ray(config.address)
    search = _Search(config, url, report)
    try:
        search.measure_reference(existing)  # nothing is written before: the lease comes next
        with StudyLease(url, config.study, ttl_s=config.lease_ttl_s) as held, Store.open(url) as store:
            search.held = held  # one driver per study from here to the end
            search.open(store)
            loop_started = time.monotonic()
            stopped = search.run()
            loop_seconds = time.monotonic() - loop_started
            search.cancel()
            full, reference, methods = hypervolumes(store, search.study, search.done())
    except _store_failures() as err:
        raise SearchError(f"the store {redact(url)} stopped answering ({first_line(err)}); the search "
                          "stopped, keeping every result recorded before; run the same command "
                          "again once the database is back to resume") from None
    finally:
        search.cancel()
        if started_ray:
            ray.shutdown()
    return SearchResult(config.study, full, methods, reference, search.measured, search.reused,
                        search.failed, time.monotonic() - search.started, loop_seconds, stopped,
                        config.objective)


def check_objective(study: StudyInfo, objective: str) -> None:
    """SearchError unless the study was created to minimise `objective` (a resumed study keeps
    its own: MACs and latency fronts are different searches)."""
    stored = study_cost(study.objectives)
    if stored != objective:
        raise SearchError(f"study '{study.name}' minimises {stored}, not {objective}: pass "
                          f"--objective {stored} (or leave it out), or another --study name")


def _same_study(study: StudyInfo, **expected: str) -> None:
    try:
        check_same_study(study, **expected)
    except StoreError as err:
        raise SearchError(str(err)) from None


def _store_failures() -> tuple[type[BaseException], ...]:
    """What a database that goes away mid-search raises: through the store, SQLAlchemy's errors
    (a locked SQLite file past its busy timeout, a stopped server); through Optuna's storage, its
    own wrapper of them."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import DBAPIError

    return DBAPIError, StorageInternalError


def _outcome(info: Any) -> ProposalOutcome:
    if info.status != "ok":
        return ProposalOutcome(failed=True)
    if info.stage == "screen":
        return ProposalOutcome(macs=info.macs_per_image, stopped=True)
    quality = (info.extra or {}).get("quality", {}).get("value")  # the study's metric (KID, ...)
    return ProposalOutcome(macs=info.macs_per_image, fid=info.fid if quality is None else quality,
                           latency=info.latency_per_image_s)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"
