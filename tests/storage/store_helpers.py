"""Helpers for the store tests: plan names as hashes, evaluation records, evaluated candidates."""

from __future__ import annotations

from storage import EvaluationRecord, SampleImages, Store

MODEL = "digits-dit"
SPEC_HASH = "5" * 64


def plan_hash(name: str) -> str:
    """A plan hash that reads as its name in failures."""
    return name.ljust(64, "0")


def plan_json(name: str) -> str:
    return f'{{"format": "edgediff-plan", "name": "{name}"}}'


def record(plan: str, *, fid: float | None = 10.0, macs: int | None = 1000, **fields) -> EvaluationRecord:
    """An evaluation of plan `plan` (a name, see plan_hash) of MODEL under SPEC_HASH."""
    values = dict(
        model=MODEL,
        spec_hash=SPEC_HASH,
        plan_hash=plan_hash(plan),
        status="ok",
        num_images=10,
        device="cpu",
        fid=fid,
        macs_per_image=macs,
    )
    return EvaluationRecord(**{**values, **fields})


def add_evaluated(store: Store, study: str, plan: str, *, method: str = "greedy", label=None, **metrics):
    """Add plan `plan` as a candidate of `study` by `method`, with an ok evaluation; its point's hash."""
    store.record_candidate_evaluation(
        study,
        plan_json=plan_json(plan),
        plan_hash=plan_hash(plan),
        method=method,
        label=label,
        record=record(plan, **metrics),
    )
    return plan_hash(plan)


def add_plan(store: Store, study: str, plan: str, *, method: str = "greedy", label: str | None = None):
    """Add plan `plan` as a candidate of `study`, without an evaluation."""
    return store.add_candidate(
        study, plan_json=plan_json(plan), plan_hash=plan_hash(plan), method=method, label=label
    )


def find(store: Store, plan: str, *, stage: str = "full", model: str = MODEL):
    """The evaluation of plan `plan` of `model` under SPEC_HASH, or None."""
    return store.find_evaluation(model=model, spec_hash=SPEC_HASH, plan_hash=plan_hash(plan), stage=stage)


def sheet(plan: str, *, count: int = 4, png: bytes = b"\x89PNG\x00\xff", **fields) -> SampleImages:
    """A sample sheet of plan `plan` of MODEL under SPEC_HASH (the png need not be a real PNG)."""
    values = dict(
        model=MODEL,
        spec_hash=SPEC_HASH,
        plan_hash=plan_hash(plan),
        png=png,
        count=count,
        columns=min(count, 8),
        width=16,
        height=16,
        captions=tuple(str(k % 10) for k in range(count)),
        seeds=tuple(range(count)),
    )
    return SampleImages(**{**values, **fields})
