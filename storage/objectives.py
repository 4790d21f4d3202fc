"""Queries for large studies that build no Point per evaluation (100,000 of them took seconds).

`front_superset` finds, in SQL, the few plans that can be on a MACs/FID front; `objective_rows`
reads just (plan, method, MACs, FID) of every evaluated plan for the dashboard to thin; and
`progress_rows` reads what the hypervolume curves need, in the order the evaluations finished.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Select, String, and_, case, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from storage.models import Candidate, Evaluation
from storage.rows import evaluated_join

IN_CHUNK = 500  # plan hashes per IN (...) list: far below every backend's limit on parameters


# A point's quality (`Point.quality`): the study's metric from extra["quality"], else the FID
# where the metric is the FID (evaluations from before the metrics carried it).
_OBJECTIVE = func.coalesce(Evaluation.extra[("quality", "objective")].as_string(), "fid")
QUALITY = func.coalesce(
    Evaluation.extra[("quality", "value")].as_float(), case((_OBJECTIVE == "fid", Evaluation.fid))
)


def cost_column(cost: str) -> Any:
    """The column of a study's cost objective (`storage.pareto.COSTS`)."""
    return Evaluation.macs_per_image if cost == "macs" else Evaluation.latency_per_image_s


def _measured(study: str, stage: str, method: str | None, *columns: Any,
              cost: str = "macs") -> Select[Any]:
    """`columns` of the study's candidates (of `method` if given) with an ok evaluation at `stage`
    whose MACs, cost and quality are known."""
    query = evaluated_join(select(*columns), study).where(
        Evaluation.stage == stage,
        Evaluation.status == "ok",
        Evaluation.macs_per_image.is_not(None),
        cost_column(cost).is_not(None),
        QUALITY.is_not(None),
    )
    if method is not None:
        query = query.where(Candidate.method == method)
    return query


def front_superset(session: Session, study: str, *, method: str | None, stage: str,
                   cost: str = "macs") -> list[str]:
    """The plan hashes that may be on the study's front: every plan whose quality (FID) is at most
    the lowest of all plans before it in (cost, quality) order (a window function, one pass in the
    database; cost: MACs, or the measured latency).

    A front plan passes (no plan with fewer MACs has a lower or equal quality), and so do a few
    others (equal values at more MACs): `pareto_front` on their points gives the exact front.
    """
    plans = _measured(
        study, stage, method, Candidate.plan_hash,
        cost_column(cost).label("macs"), QUALITY.label("fid"), cost=cost,
    ).subquery()  # a plan of two methods twice: harmless, and no DISTINCT sort
    lowest_before = func.min(plans.c.fid).over(order_by=(plans.c.macs, plans.c.fid), rows=(None, -1))
    ranked = select(plans.c.plan_hash, plans.c.fid, lowest_before.label("lowest_before")).subquery()
    query = select(ranked.c.plan_hash).where(
        or_(ranked.c.lowest_before.is_(None), ranked.c.fid <= ranked.c.lowest_before)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.where(ranked.c.fid != float("nan"))  # NaN sorts above every number there
    return sorted(set(session.scalars(query)))


Objectives = list[tuple[str, str, int, float | None]]  # (plan_hash, method, macs, fid)


def _quality(key: str) -> Any:
    return Evaluation.extra[("quality", key)].as_float()


def best_superset(
    session: Session,
    study: str,
    *,
    method: str | None,
    max_fid: float | None,
    fid_within: float | None,
    full_quality: float | None,
    max_macs: float | None,
    cost: str = "macs",
) -> list[str]:
    """The plan hashes among which `storage.choose.choose` picks, or names in its message, the
    same plan as among all of the study's: the feasible plans with the fewest MACs (max_macs: with
    the lowest quality), the plans with the lowest bound (max_macs: the fewest MACs), and one plan
    with an interval (the message says whether bounds are intervals). The bound is what `choose`
    compares: max_fid the quality's upper end (else the value), fid_within the paired
    difference's upper end (else the difference, else quality - full_quality)."""

    macs = cost_column(cost)  # "cheapest": the fewest MACs, or the lowest measured latency
    if max_macs is not None:
        real = Evaluation.macs_per_image  # a bound on MACs, whatever the study's cost
        fits = real <= max_macs
        first, second, interval = QUALITY, real, None
    else:
        if max_fid is not None:
            bound, limit, interval = func.coalesce(_quality("high"), QUALITY), max_fid, _quality("high")
        else:
            bound = func.coalesce(_quality("delta_high"), _quality("delta"), QUALITY - full_quality)
            limit, interval = fid_within, _quality("delta_high")
        fits = bound <= limit
        first, second = macs, bound
    # Two passes over the study: the two minima in one aggregate, then the plans that reach them
    # (four scans, one per minimum and one per plan list, took a second at 100,000 evaluations).
    lowest_fitting, lowest = session.execute(
        _measured(study, "full", method, func.min(case((fits, first))), func.min(second), cost=cost)
    ).one()
    if lowest is None:
        return []
    picked = [second == lowest]
    if lowest_fitting is not None:
        picked.append(and_(fits, first == lowest_fitting))
    plans = _measured(study, "full", method, Candidate.plan_hash, cost=cost)
    found = set(session.scalars(plans.where(or_(*picked))))
    if interval is not None:
        found.update(session.scalars(plans.where(interval.is_not(None)).limit(1)))
    return sorted(found)


def objective_rows(session: Session, study: str, *, stage: str = "full") -> Objectives:
    """(plan_hash, method, macs, fid) of every candidate with an ok evaluation at `stage` and its
    MACs known (fid None where it was not a number): a plan that several methods proposed has a
    row per method."""
    query = evaluated_join(
        select(Candidate.plan_hash, Candidate.method, Evaluation.macs_per_image, Evaluation.fid), study
    ).where(Evaluation.stage == stage, Evaluation.status == "ok", Evaluation.macs_per_image.is_not(None))
    return [tuple(row) for row in session.connection().execute(query)]  # Core rows: no ORM loading


def progress_rows(session: Session, study: str) -> list[tuple[Any, ...]]:
    """What a hypervolume curve needs of every candidate's evaluations (both stages, ok and
    failed): (evaluation_id, plan_hash, method, stage, status, macs, fid, passed_screen,
    finished_at), in the order they were done for the candidate: the later of its proposal and the
    evaluation's finish (its start if unfinished), then evaluation id and candidate id.
    `finished_at` comes as the database gives it (SQLite: text): `as_utc` makes it a datetime,
    for the few a caller keeps (parsing 100,000 of them took a second)."""
    finished = func.coalesce(Evaluation.finished_at, Evaluation.started_at)
    done = case((Candidate.created_at > finished, Candidate.created_at), else_=finished)
    passed = Evaluation.extra["passed_screen"].as_boolean()
    query = evaluated_join(
        select(Evaluation.id, Candidate.plan_hash, Candidate.method, Evaluation.stage, Evaluation.status,
               Evaluation.macs_per_image, Evaluation.fid, passed,
               type_coerce(Evaluation.finished_at, String)),
        study,
    ).order_by(done, Evaluation.id, Candidate.id)
    return [tuple(row) for row in session.connection().execute(query)]


def as_utc(value: str | datetime | None) -> datetime | None:
    """A `progress_rows` time as a timezone-aware UTC datetime (SQLite keeps naive UTC text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def chunks(values: list[str]) -> list[list[str]]:
    """`values` in lists of at most IN_CHUNK."""
    return [values[k:k + IN_CHUNK] for k in range(0, len(values), IN_CHUNK)]
