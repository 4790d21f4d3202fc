"""The work a search hands to its workers, and the Ray task that runs it.

A job and its result are typed objects (the spec, the plan, the measurements themselves): Ray
pickles them to any node of a cluster, and JSON is written only where the store keeps them.
Three kinds of job:

- `reference`: the uncompressed model's run under the spec (once per search). It returns the
  measurement hash, the uncompressed plan, the facts a search space needs and the run itself, which
  the driver puts in Ray's object store for every later job (no node measures it twice).
- `prepare`: a plan a strategy builds on a worker (the DiTFastAttn greedy's calibration for one
  threshold): the method's strategy class's `prepare_plan`.
- `evaluate`: one plan's staged evaluation; returns every stage measured, and the failure if a
  stage failed (a failure is a result to record, not a crash).

A worker process keeps its Evaluator (loaded model, FID feature network) between jobs. Nothing here
writes to the store: the driver records results as they arrive.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evaluators.plan import Plan
    from evaluators.results import Measurement, Reference
    from evaluators.spec import EvalSpec

# (model, spec JSON, device, cache dir) -> Evaluator, for this worker process
_EVALUATORS: dict[tuple[str, str, str, str | None], Any] = {}


@dataclass(frozen=True)
class Job:
    """One unit of work for a worker.

    Attributes:
        kind: "reference", "prepare" or "evaluate".
        model: registry name, local folder or hub id.
        spec: the evaluation spec.
        device: torch device on the worker ("cpu", "cuda").
        threads: torch CPU threads on the worker (None: torch's default).
        cache_dir: where workers cache the uncompressed model's run (a local folder per node).
        plan: the plan to evaluate (kind "evaluate").
        method: the search method whose strategy prepares the plan (kind "prepare").
        options: keyword arguments of its `prepare_plan` (kind "prepare").
    """

    kind: str
    model: str
    spec: EvalSpec
    device: str = "cpu"
    threads: int | None = None
    cache_dir: str | None = None
    plan: Plan | None = None
    method: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferenceRun:
    """A `reference` job's result."""

    worker: str
    spec_hash: str
    full_plan: Plan
    facts: dict[str, Any]
    reference: Reference
    seconds: float = 0.0


@dataclass(frozen=True)
class PreparedPlan:
    """A `prepare` job's result."""

    worker: str
    plan: Plan
    seconds: float = 0.0


@dataclass(frozen=True)
class Failure:
    """Why a measurement failed: the error text, the stage and its images, where and since when."""

    error: str
    stage: str
    num_images: int
    device: str
    started_at: datetime


@dataclass(frozen=True)
class MeasuredPlan:
    """An `evaluate` job's result: the stages measured, and the failure that stopped it."""

    worker: str
    measurements: tuple[Measurement, ...] = ()
    failure: Failure | None = None
    seconds: float = 0.0


def run_job(job: Job, reference: Any = None) -> ReferenceRun | PreparedPlan | MeasuredPlan:
    """Run one job in this process; `reference` is the uncompressed run from the reference job."""
    import torch

    if job.threads:
        torch.set_num_threads(job.threads)
    evaluator = _evaluator(job)
    if reference is not None:
        evaluator.adopt_reference(reference)
    began = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    if job.kind == "reference":
        from search.space import model_facts

        ref = evaluator.reference()
        return ReferenceRun(worker, evaluator.spec_hash, evaluator.full_plan,
                            model_facts(evaluator.denoiser), ref, time.perf_counter() - began)
    if job.kind == "prepare":
        from search.methods import search_method

        strategy = search_method(job.method or "").strategy_class()
        plan = strategy.prepare_plan(evaluator, **job.options)
        return PreparedPlan(worker, plan, time.perf_counter() - began)
    if job.kind == "evaluate":
        measurements, failure = _evaluate(evaluator, job)
        return MeasuredPlan(worker, measurements, failure, time.perf_counter() - began)
    raise ValueError(f"unknown job kind {job.kind!r}")


def _evaluate(evaluator: Any, job: Job) -> tuple[tuple[Measurement, ...], Failure | None]:
    from search.evaluation import error_text

    assert job.plan is not None
    results: list[Measurement] = []
    started = datetime.now(timezone.utc)
    try:
        evaluator.evaluate_staged(job.plan, on_result=results.append)
    except Exception as err:  # noqa: BLE001 - recorded as a failed evaluation by the driver
        stage = "full" if results or not evaluator.spec.screen_images else "screen"
        failure = Failure(error_text(err), stage, evaluator.spec.stage_images(stage),
                          str(evaluator.device), started)
        return tuple(results), failure
    return tuple(results), None


def _evaluator(job: Job) -> Any:
    from evaluators.evaluate import Evaluator

    key = (job.model, job.spec.to_json(), job.device, job.cache_dir)
    if key not in _EVALUATORS:
        _EVALUATORS[key] = Evaluator(job.model, job.spec, cache_dir=job.cache_dir,
                                     device=job.device)
    return _EVALUATORS[key]


def remote_runner(num_cpus: float, num_gpus: float, max_retries: int) -> Any:
    """`run_job` as a Ray task asking for these resources; a task whose worker dies (node lost,
    out of memory, killed) is retried up to `max_retries` times."""
    import ray

    return ray.remote(run_job).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                       max_retries=max_retries, retry_exceptions=False)
