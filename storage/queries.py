"""The store's read side: the points of a study, its fronts and the plan chosen under a constraint.

A mixin of `storage.store.Store` (it uses the store's `_reading` sessions and `candidates`), kept
apart so that each file reads in one sitting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from storage import objectives, rows
from storage.choose import check_one_constraint, choose, ranked
from storage.errors import StoreError
from storage.models import Candidate, Evaluation
from storage.pareto import Point, merge_duplicates, pareto_front, study_cost
from storage.records import HistoryEntry, StudyRef, study_name

FULL_METHOD = "full"  # the candidate method of the uncompressed model's plan


class StoreQueries:
    """Queries over one study's evaluations (see `Store`)."""

    def points(
        self,
        study: StudyRef,
        *,
        method: str | None = None,
        stage: str = "full",
        plan_hash: str | None = None,
        plan_hashes: Sequence[str] | None = None,
    ) -> list[Point]:
        """Every plan of the study (proposed by `method` if given; only the plan `plan_hash`, or
        the plans `plan_hashes`, if given) with an ok evaluation at `stage`, one point per plan,
        sorted by macs, fid, plan_hash."""
        wanted = None if plan_hashes is None else sorted(set(plan_hashes))
        with self._reading() as session:
            rows.study_row(session, study)  # StoreError for an unknown study
            query = (
                rows.evaluated_join(select(*rows.POINT_COLUMNS), study_name(study))
                .where(Evaluation.stage == stage, Evaluation.status == "ok")
                .order_by(Candidate.id)
            )
            if method is not None:
                query = query.where(Candidate.method == method)
            if plan_hash is not None:
                query = query.where(Candidate.plan_hash == plan_hash)
            if wanted is None:
                found = list(session.execute(query))
            else:  # a few hundred hashes per statement; candidate order kept across them
                found = [row for chunk in objectives.chunks(wanted)
                         for row in session.execute(query.where(Candidate.plan_hash.in_(chunk)))]
                found.sort(key=lambda row: row.candidate_id)
            points = merge_duplicates(map(rows.point, found))
        return sorted(points, key=_point_order)

    def objectives(self, study: StudyRef, *, stage: str = "full") -> objectives.Objectives:
        """(plan_hash, method, macs, fid) of every candidate with an ok evaluation at `stage` whose
        MACs are known (fid None if it was not a number): the few columns a plot of every plan
        needs (see `storage.objectives`)."""
        with self._reading() as session:
            rows.study_row(session, study)
            return objectives.objective_rows(session, study_name(study), stage=stage)

    def progress(self, study: StudyRef) -> list[tuple[Any, ...]]:
        """What a hypervolume curve needs of every candidate's evaluations, in the order they were
        done (see `storage.objectives.progress_rows`)."""
        with self._reading() as session:
            rows.study_row(session, study)
            return objectives.progress_rows(session, study_name(study))

    def outcomes(self, study: StudyRef, method: str | None = None) -> list[HistoryEntry]:
        """Every candidate of the study (of one method if given) with each of its evaluations under
        the study's model and spec hash (both stages, ok and failed), in the order they finished
        (unfinished last), then by evaluation id and candidate id. One query; a plan that several
        methods proposed appears once per candidate, a candidate never evaluated not at all."""
        with self._reading() as session:
            found = rows.outcomes(session, study_name(study), method)
            if not found:
                rows.study_row(session, study)  # StoreError for an unknown study
            return found

    def evaluated_marker(self, study: StudyRef) -> str:
        """A short text that changes whenever `outcomes(study)` would (one aggregate query): a page
        showing the study asks for it to know when to redraw."""
        with self._reading() as session:
            rows.study_row(session, study)  # StoreError for an unknown study
            return rows.evaluated_marker(session, study_name(study))

    def front(self, study: StudyRef, *, method: str | None = None, stage: str = "full") -> list[Point]:
        """The study's cost/FID Pareto front (of one method's candidates if given; the cost is
        MACs, or the measured latency of a latency study, `cost`). The database
        narrows the plans down to the few that can be on it (`objectives.front_superset`); only
        their points are read."""
        with self._reading() as session:
            cost = study_cost(rows.study_row(session, study).objectives)
            hashes = objectives.front_superset(session, study_name(study), method=method,
                                               stage=stage, cost=cost)
        if not hashes:
            return []
        return pareto_front(self.points(study, method=method, stage=stage, plan_hashes=hashes), cost)

    def cost(self, study: StudyRef) -> str:
        """The study's cost objective: "macs", or "latency" for a study searched with
        `--objective latency` (its front, best plan and hypervolume use the measured latency)."""
        if not isinstance(study, str):
            return study_cost(study.objectives)
        with self._reading() as session:
            return study_cost(rows.study_row(session, study).objectives)

    def full_model_point(self, study: StudyRef, points: Sequence[Point] | None = None) -> Point | None:
        """The point of the uncompressed model's plan (the first candidate of method "full" with an
        ok full-stage evaluation), or None; `points`: the study's `points()`, if already read (else
        only the full model's plans are read)."""
        by_hash = None if points is None else {p.plan_hash: p for p in points}
        for candidate in self.candidates(study, method=FULL_METHOD):
            if by_hash is None:
                found = self.points(study, plan_hash=candidate.plan_hash)
                if found:
                    return found[0]
            elif candidate.plan_hash in by_hash:
                return by_hash[candidate.plan_hash]
        return None

    def best(
        self,
        study: StudyRef,
        *,
        max_fid: float | None = None,
        fid_within: float | None = None,
        max_macs: float | None = None,
        method: str | None = None,
    ) -> Point:
        """The plan chosen by exactly one constraint.

        "Cheapest" is the study's cost: the fewest MACs, or the lowest measured latency of a latency
        study. max_fid: the cheapest plan with fid <= max_fid; fid_within: the cheapest with fid <= the full
        model's fid + fid_within; max_macs: the lowest-fid plan with macs <= max_macs. Ties go to the
        lower fid (resp. macs), then the plan hash. StoreError if no plan satisfies the constraint.
        """
        check_one_constraint(max_fid=max_fid, fid_within=fid_within, max_macs=max_macs)
        full = None
        if fid_within is not None:
            full = self.full_model_point(study)
            if full is None or full.quality is None:
                raise StoreError(
                    f"study '{study_name(study)}' has no evaluation of the full (uncompressed) plan "
                    "to compare "
                    "--fid-within with; evaluate the full plan first"
                )
        with self._reading() as session:  # the few plans `choose` can pick or name (see there)
            cost = study_cost(rows.study_row(session, study).objectives)
            hashes = objectives.best_superset(
                session, study_name(study), method=method, max_fid=max_fid, fid_within=fid_within,
                full_quality=None if full is None else full.quality, max_macs=max_macs, cost=cost,
            )
        points = self.points(study, method=method, plan_hashes=hashes) if hashes else []
        where = f"study '{study_name(study)}'" + ("" if method is None else f" (method {method})")
        return choose(
            points,
            where=where,
            max_fid=max_fid,
            fid_within=fid_within,
            full=full,
            max_macs=max_macs,
            cost=cost,
        )

    def rung_correlations(self, study: StudyRef) -> list[Any]:
        """Spearman's rank correlation of each rung of a multi-fidelity search with its final
        measurement and its confirmations (`storage.rungs.correlations`)."""
        from storage.rungs import correlations

        return correlations(self, study)

    def feasible(
        self,
        study: StudyRef,
        *,
        max_fid: float | None = None,
        fid_within: float | None = None,
        max_macs: float | None = None,
        method: str | None = None,
    ) -> list[Point]:
        """Every plan that meets the one constraint, the one `best` picks first, then in the order
        `best` would pick them (what a confirmation tries in turn). StoreError as `best` when none
        does. Reads every point of the study (`best` reads only the few it can pick)."""
        given = {"max_fid": max_fid, "fid_within": fid_within, "max_macs": max_macs}
        first = self.best(study, method=method, **given)  # the checks and messages of `best`
        points = self.points(study, method=method)
        full = self.full_model_point(study) if fid_within is not None else None
        order = ranked(points, where=f"study '{study_name(study)}'", full=full,
                       cost=self.cost(study), **given)
        return [first, *(p for p in order if p.plan_hash != first.plan_hash)]


def _point_order(point: Point) -> tuple[bool, float, bool, float, str]:
    return (point.macs is None, point.macs or 0, point.fid is None, point.fid or 0.0, point.plan_hash)
