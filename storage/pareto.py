"""The cost/quality Pareto front (MACs or measured latency against FID) and its hypervolume
(pure Python, no SQL)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import groupby


@dataclass(frozen=True, kw_only=True)
class Point:
    """One evaluated plan of a study, in objective space.

    Fields: `plan_hash`; `candidate_ids` (sorted), `methods` (sorted, distinct) and `labels`
    (sorted, distinct, no None) of every candidate that proposed this plan; `macs` (MACs per image)
    and `fid` (None when not measured); `latency` (seconds per image), `mse`, `psnr`, `similarity`,
    `class_accuracy`; `evaluation_id` of the measurement.

    The quality objective (minimised with `macs`): `quality` is the study's quality metric (its
    spec's `quality`: FID, KID or the fidelity loss; the FID when not given), with its interval
    `quality_low`..`quality_high`; `delta` is quality(plan) - quality(uncompressed model) measured
    PAIRED on the same seeds, with its interval `delta_low`..`delta_high` (None where the
    evaluation predates intervals). `objective` names the metric.

    The parameter footprint: `params` of the denoiser and `params_skipped`, those the plan never
    runs (depth-skip's dropped levels; None where the evaluation did not count them).
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
    objective: str = "fid"
    quality: float | None = None
    quality_low: float | None = None
    quality_high: float | None = None
    delta: float | None = None
    delta_low: float | None = None
    delta_high: float | None = None
    params: int | None = None
    params_skipped: int | None = None

    def __post_init__(self) -> None:
        if self.quality is None and self.objective == "fid":
            object.__setattr__(self, "quality", self.fid)

    def delta_to(self, full: Point | None) -> float | None:
        """The paired difference to the uncompressed model, else the plain difference of values."""
        if self.delta is not None:
            return self.delta
        if full is None or self.quality is None or full.quality is None:
            return None
        return self.quality - full.quality

    def delta_bound(self, full: Point | None) -> float | None:
        """The upper end of the paired difference's interval (what `--fid-within` trusts), else the
        plain difference (an evaluation without an interval)."""
        return self.delta_high if self.delta_high is not None else self.delta_to(full)


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


COSTS = ("macs", "latency")  # a study's cost objective: MACs or measured seconds per image


def cost_of(point: Point, cost: str = "macs") -> float | None:
    """The point's cost: MACs per image, or measured latency (seconds per image)."""
    return point.macs if cost == "macs" else point.latency


def study_cost(objectives: Sequence[str]) -> str:
    """The cost objective of a study from its stored `objectives` (["latency", "fid"]: latency;
    anything else, as every study before latency objectives: macs)."""
    return objectives[0] if objectives and objectives[0] in COSTS else "macs"


def _measured(point: Point, cost: str = "macs") -> bool:
    return (point.macs is not None and cost_of(point, cost) is not None
            and point.quality is not None and not math.isnan(point.quality))


def pareto_front(points: Iterable[Point], cost: str = "macs") -> list[Point]:
    """The points no other point dominates, minimising (cost, quality), sorted by cost, quality,
    plan_hash (cost: MACs, or measured latency for `cost="latency"`; quality is the FID unless
    the study measures another metric).

    A point is dominated when another is <= in both objectives and < in one; points with equal
    (cost, quality) but different plans all stay. Points without the cost or quality are left out.
    """
    ranked = sorted(
        (p for p in merge_duplicates(points) if _measured(p, cost)),
        key=lambda p: (cost_of(p, cost), p.quality, p.plan_hash),
    )
    front: list[Point] = []
    lowest = math.inf  # over every point with a lower cost than the current group
    for _, same_macs in groupby(ranked, key=lambda p: cost_of(p, cost)):
        group = list(same_macs)
        best = group[0].quality  # the group is sorted: only its best points can survive
        if best < lowest:
            front.extend(p for p in group if p.quality == best)
            lowest = best
    return front


def hypervolume_2d(points: Iterable[Point], reference: tuple[float, float], cost: str = "macs") -> float:
    """The area dominated by the points' front and bounded by `reference` = (cost, fid).

    Points not strictly better than the reference in both objectives add nothing and are ignored.
    """
    ref_macs, ref_fid = reference
    inside = [p for p in pareto_front(points, cost)
              if cost_of(p, cost) < ref_macs and p.quality < ref_fid]
    if not inside:
        return 0.0
    # The front is sorted by cost with falling quality: a strip per point, up to the next one's cost.
    lefts = [cost_of(p, cost) for p in inside]
    rights = lefts[1:] + [ref_macs]
    return sum((right - left) * (ref_fid - p.quality)
               for p, left, right in zip(inside, lefts, rights, strict=True))


HV_FID_FACTOR = 2.0  # the hypervolume's reference point: the full model's MACs, twice its FID


def reference_point(full: Point | None, cost: str = "macs") -> tuple[float, float] | None:
    """The reference point fronts are compared against: (the full model's cost, HV_FID_FACTOR x
    its FID); None without a measured full model."""
    value = None if full is None else full.quality
    if full is None or not cost_of(full, cost) or value is None or not math.isfinite(value) or value <= 0:
        return None
    return float(cost_of(full, cost)), HV_FID_FACTOR * value  # type: ignore[arg-type]


def normalized_hypervolume(points: Iterable[Point], full: Point | None, cost: str = "macs") -> float:
    """`hypervolume_2d` against `reference_point(full)`, in full-model units (cost / full cost,
    FID / full FID: with `cost="latency"` the latency ratio), so studies of different models
    compare; 0 without a measured full model."""
    reference = reference_point(full, cost)
    if reference is None:
        return 0.0
    return hypervolume_2d(points, reference, cost) / (reference[0] * reference[1] / HV_FID_FACTOR)
