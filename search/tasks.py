"""The work a search hands to its workers, and the Ray task that runs it.

A job is plain data (model name, spec JSON, plan JSON), so it travels to any node of a Ray cluster.
Three kinds:

- `reference`: the uncompressed model's run under the spec (once per search). It returns the
  measurement hash, the uncompressed plan, the facts a search space needs and the run itself, which
  the driver puts in Ray's object store for every later job (no node measures it twice).
- `calibrate`: the DiTFastAttn greedy calibration for one threshold; returns the plan.
- `evaluate`: one plan's staged evaluation; returns every stage measured, and the error text if a
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
from typing import Any

# (model, spec JSON, device, cache dir) -> Evaluator, for this worker process
_EVALUATORS: dict[tuple[str, str, str, str | None], Any] = {}


@dataclass(frozen=True)
class Job:
    """One unit of work for a worker.

    Attributes:
        kind: "reference", "calibrate" or "evaluate".
        model: registry name, local folder or hub id.
        spec_json: the evaluation spec (`EvalSpec.to_json()`).
        device: torch device on the worker ("cpu", "cuda").
        threads: torch CPU threads on the worker (None: torch's default).
        cache_dir: where workers cache the uncompressed model's run (a local folder per node).
        plan_json: the plan to evaluate (kind "evaluate").
        greedy: keyword arguments of `search.greedy.greedy_plan` (kind "calibrate").
    """

    kind: str
    model: str
    spec_json: str
    device: str = "cpu"
    threads: int | None = None
    cache_dir: str | None = None
    plan_json: str | None = None
    greedy: dict[str, Any] = field(default_factory=dict)


def run_job(job: Job, reference: Any = None) -> dict[str, Any]:
    """Run one job in this process; `reference` is the uncompressed run from the reference job."""
    import torch

    if job.threads:
        torch.set_num_threads(job.threads)
    evaluator = _evaluator(job)
    if reference is not None:
        evaluator.adopt_reference(reference)
    began = time.perf_counter()
    out: dict[str, Any] = {"worker": f"{socket.gethostname()}:{os.getpid()}"}
    if job.kind == "reference":
        from search.space import model_facts

        ref = evaluator.reference()
        out.update(spec_hash=evaluator.spec_hash, full_plan=evaluator.full_plan.to_json(),
                   facts=model_facts(evaluator.denoiser), reference=ref)
    elif job.kind == "calibrate":
        from search.greedy import greedy_plan

        conditions = None
        if evaluator.subject.conditioning == "prompt":
            conditions = evaluator.subject.conditions(evaluator.spec, job.greedy.get("n_calib", 8))
        plan = greedy_plan(evaluator.subject, evaluator.full_plan, conditions=conditions,
                           **job.greedy)
        out["plan"] = plan.to_json()
    elif job.kind == "evaluate":
        out.update(_evaluate(evaluator, job))
    else:
        raise ValueError(f"unknown job kind {job.kind!r}")
    out["seconds"] = time.perf_counter() - began
    return out


def _evaluate(evaluator: Any, job: Job) -> dict[str, Any]:
    from evaluators.plan import Plan
    from search.evaluation import error_text

    plan = Plan.from_json(job.plan_json or "")
    results: list[dict[str, Any]] = []
    started = datetime.now(timezone.utc)
    try:
        evaluator.evaluate_staged(plan, on_result=lambda e: results.append(e.to_dict()))
    except Exception as err:  # noqa: BLE001 - recorded as a failed evaluation by the driver
        stage = "full" if results or not evaluator.spec.screen_images else "screen"
        return {"evaluations": results, "error": error_text(err), "failed_stage": stage,
                "failed_images": evaluator.spec.stage_images(stage),
                "device": str(evaluator.device), "started_at": started.isoformat()}
    return {"evaluations": results}


def _evaluator(job: Job) -> Any:
    from evaluators.evaluate import Evaluator
    from evaluators.spec import EvalSpec

    key = (job.model, job.spec_json, job.device, job.cache_dir)
    if key not in _EVALUATORS:
        _EVALUATORS[key] = Evaluator(job.model, EvalSpec.from_json(job.spec_json),
                                     cache_dir=job.cache_dir, device=job.device)
    return _EVALUATORS[key]


def remote_runner(num_cpus: float, num_gpus: float, max_retries: int) -> Any:
    """`run_job` as a Ray task asking for these resources; a task whose worker dies (node lost,
    out of memory, killed) is retried up to `max_retries` times."""
    import ray

    return ray.remote(run_job).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                       max_retries=max_retries, retry_exceptions=False)
