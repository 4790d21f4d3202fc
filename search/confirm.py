"""Confirmation before export: the plans a constraint admits are re-measured on held-out seeds, at a
confirmation size, and the first whose confirmed numbers still meet the constraint is the one
exported; a plan that breaks it there is refused (and named).

    result = confirm(store, "dit", evaluator_for, images=1000, fid_within=5)
    result.chosen, result.refused, result.confirmed[plan_hash]
    text = confirmed_plan_text(store.plan_json("dit", result.chosen.plan_hash), result, images=1000)

The confirmation's measurements go to their own study, `<study>-confirm-<images>`, under a spec
that differs only in its seeds (a fresh seed range) and image count, so they are kept, shown and
reused like any other evaluation, and never mix with the search's numbers. The exported plan
carries them in its notes (`notes["confirmation"]`; notes are not part of the plan hash).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from evaluators.evaluate import Evaluator
from evaluators.plan import Plan
from evaluators.spec import EvalSpec
from search.evaluation import evaluate_candidate, open_study
from storage import Point, Store
from storage.choose import meets, number

CONFIRM_SEED_OFFSET = 1_000_000  # held-out seeds: far from any search's 0..N-1


@dataclass(frozen=True)
class Confirmation:
    """What `confirm` found: `chosen` (the first plan whose confirmed numbers meet the
    constraint; None if none did), `refused` (plans that broke it on the held-out seeds, in the
    order tried), `confirmed` (plan hash -> its confirmed point), `full` (the uncompressed
    model's confirmed point), `study` (the confirmation study's name)."""

    chosen: Point | None
    refused: tuple[Point, ...]
    confirmed: dict[str, Point] = field(default_factory=dict)
    full: Point | None = None
    study: str = ""


def confirmation_spec(spec: EvalSpec, images: int) -> EvalSpec:
    """The spec of the held-out measurement: new seeds, `images` images, no screen."""
    return replace(spec, seed=spec.seed + CONFIRM_SEED_OFFSET, num_images=images, screen_images=0,
                   screen_min_psnr=None)


def confirm(store: Store, study: str, make_evaluator: Callable[[EvalSpec], Evaluator], *,
            images: int, method: str | None = None, max_tries: int = 5,
            max_fid: float | None = None, fid_within: float | None = None,
            max_macs: float | None = None) -> Confirmation:
    """Re-measure the plans `store.feasible` admits (up to `max_tries`) on held-out seeds and keep
    the first that still meets the constraint. `make_evaluator(spec)` builds the evaluator."""
    given = {"max_fid": max_fid, "fid_within": fid_within, "max_macs": max_macs}
    candidates = store.feasible(study, method=method, **given)[:max_tries]
    info = store.get_study(study)
    spec = confirmation_spec(EvalSpec.from_json(info.spec_json), images)
    evaluator = make_evaluator(spec)
    name = f"{study}-confirm-{images}"
    target = open_study(store, name, evaluator, method="confirm",
                        notes=f"held-out confirmation of study '{study}'")
    full = store.full_model_point(name)
    refused: list[Point] = []
    confirmed: dict[str, Point] = {}
    for point in candidates:
        plan = Plan.from_json(store.plan_json(study, point.plan_hash))
        evaluate_candidate(store, target, evaluator, plan, method="confirm")
        [measured] = store.points(name, plan_hash=point.plan_hash)
        confirmed[point.plan_hash] = measured
        if meets(measured, full, **given):
            return Confirmation(measured, tuple(refused), confirmed, full, name)
        refused.append(measured)
    return Confirmation(None, tuple(refused), confirmed, full, name)


def confirmed_numbers(result: Confirmation, images: int) -> dict[str, Any]:
    """The chosen plan's confirmed numbers, as the exported plan's notes carry them."""
    p, full = result.chosen, result.full
    assert p is not None
    return {"study": result.study, "images": images, "seed": CONFIRM_SEED_OFFSET,
            "objective": p.objective, "value": p.quality, "low": p.quality_low,
            "high": p.quality_high, "delta": p.delta_to(full), "delta_low": p.delta_low,
            "delta_high": p.delta_high, "full_value": None if full is None else full.quality,
            "macs_per_image": p.macs, "psnr": p.psnr}


def confirmed_plan_text(plan_json: str, result: Confirmation, images: int) -> str:
    """The plan file of the chosen plan with its confirmed numbers in `notes["confirmation"]`
    (the plan and its hash are unchanged)."""
    plan = Plan.from_json(plan_json)
    notes = dict(plan.notes, confirmation=confirmed_numbers(result, images))
    return replace(plan, notes=notes).to_json()


def what_would_qualify(result: Confirmation, *, max_fid: float | None = None,
                       fid_within: float | None = None, max_macs: float | None = None) -> str:
    """The option value that would have admitted the best refused plan on the held-out seeds
    ("--fid-within 3.2 would admit plan 1a2b3c4d5e6f"), or "" when nothing was tried."""
    if not result.refused:
        return ""
    if max_macs is not None:
        bounds = {p.plan_hash: p.macs for p in result.refused if p.macs is not None}
        option = "--max-macs"
    elif max_fid is not None:
        bounds = {p.plan_hash: p.quality_high if p.quality_high is not None else p.quality
                  for p in result.refused}
        option = "--max-fid"
    else:
        bounds = {p.plan_hash: p.delta_bound(result.full) for p in result.refused}
        option = "--fid-within"
    known = {h: b for h, b in bounds.items() if b is not None}
    if not known:
        return ""
    plan_hash = min(known, key=lambda h: (known[h], h))
    return f"{option} {number(known[plan_hash])} would admit plan {plan_hash[:12]}"
