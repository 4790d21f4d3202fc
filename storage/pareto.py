"""The MACs/FID Pareto front and its hypervolume (pure Python, no SQL)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from itertools import groupby


@dataclass(frozen=True, kw_only=True)
class Point:
    """One evaluated plan of a study, in objective space.

    Fields: `plan_hash`; `candidate_ids` (sorted), `methods` (sorted, distinct) and `labels`
    (sorted, distinct, no None) of every candidate that proposed this plan; `macs` (MACs per image)
    and `fid`, the two objectives (both minimised; None when not measured); `latency` (seconds per
    image), `mse`, `psnr`, `similarity`, `class_accuracy`; `evaluation_id` of the measurement.
    """

    plan_hash: str
    macs: int | None
    fid: float | None
    candidate_ids: tuple[int, ...] = ()
    methods: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    latency: float | None = None
    mse: float | None = None
    psnr: float | None = None
    similarity: float | None = None
    class_accuracy: float | None = None
    evaluation_id: int | None = None


def merge_duplicates(points: Iterable[Point]) -> list[Point]:
    """One point per plan_hash, listing every candidate, method and label (first point's metrics)."""
    merged: dict[str, Point] = {}
    for point in points:
        seen = merged.get(point.plan_hash)
        if seen is None:
            merged[point.plan_hash] = point
            continue
        merged[point.plan_hash] = replace(
            seen,
            candidate_ids=tuple(sorted(set(seen.candidate_ids) | set(point.candidate_ids))),
            methods=tuple(sorted(set(seen.methods) | set(point.methods))),
            labels=tuple(sorted(set(seen.labels) | set(point.labels))),
        )
    return list(merged.values())


def _measured(point: Point) -> bool:
    return point.macs is not None and point.fid is not None and not math.isnan(point.fid)


def pareto_front(points: Iterable[Point]) -> list[Point]:
    """The points no other point dominates, minimising (macs, fid), sorted by macs, fid, plan_hash.

    A point is dominated when another is <= in both objectives and < in one; points with equal
    (macs, fid) but different plans all stay. Points without macs or fid are left out.
    """
    ranked = sorted(
        (p for p in merge_duplicates(points) if _measured(p)), key=lambda p: (p.macs, p.fid, p.plan_hash)
    )
    front: list[Point] = []
    lowest_fid = math.inf  # over every point with fewer MACs than the current group
    for _, same_macs in groupby(ranked, key=lambda p: p.macs):
        group = list(same_macs)
        best = group[0].fid  # the group is sorted by fid: only its lowest-fid points can survive
        if best < lowest_fid:
            front.extend(p for p in group if p.fid == best)
            lowest_fid = best
    return front


def hypervolume_2d(points: Iterable[Point], reference: tuple[float, float]) -> float:
    """The area dominated by the points' front and bounded by `reference` = (macs, fid).

    Points not strictly better than the reference in both objectives add nothing and are ignored.
    """
    ref_macs, ref_fid = reference
    inside = [p for p in pareto_front(points) if p.macs < ref_macs and p.fid < ref_fid]
    if not inside:
        return 0.0
    # The front is sorted by macs with falling fid: a strip per point, up to the next point's macs.
    rights = [p.macs for p in inside[1:]] + [ref_macs]
    return sum((right - p.macs) * (ref_fid - p.fid) for p, right in zip(inside, rights, strict=True))


HV_FID_FACTOR = 2.0  # the hypervolume's reference point: the full model's MACs, twice its FID


def reference_point(full: Point | None) -> tuple[float, float] | None:
    """The reference point fronts are compared against: (the full model's MACs, HV_FID_FACTOR x
    its FID); None without a measured full model."""
    if full is None or not full.macs or full.fid is None or not math.isfinite(full.fid) or full.fid <= 0:
        return None
    return float(full.macs), HV_FID_FACTOR * full.fid


def normalized_hypervolume(points: Iterable[Point], full: Point | None) -> float:
    """`hypervolume_2d` against `reference_point(full)`, in full-model units (MACs / full MACs,
    FID / full FID), so studies of different models compare; 0 without a measured full model."""
    reference = reference_point(full)
    if reference is None:
        return 0.0
    return hypervolume_2d(points, reference) / (reference[0] * reference[1] / HV_FID_FACTOR)
