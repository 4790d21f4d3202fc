"""Choosing one plan from a study's points by one constraint (pure Python, no SQL)."""

from __future__ import annotations

from typing import Any

from storage.errors import StoreError
from storage.pareto import Point, cost_of


def check_one_constraint(
    *, max_fid: float | None = None, fid_within: float | None = None, max_macs: float | None = None
) -> None:
    """StoreError unless exactly one constraint is given."""
    values = {"--max-fid": max_fid, "--fid-within": fid_within, "--max-macs": max_macs}
    given = [option for option, value in values.items() if value is not None]
    if len(given) != 1:
        got = f" (got {', '.join(given)})" if given else ""
        raise StoreError(f"choose a plan by exactly one of --max-fid, --fid-within, --max-macs{got}")


def describe_constraint(
    *, max_fid: float | None = None, fid_within: float | None = None, max_macs: float | None = None
) -> str:
    """The constraint as recorded with an export: "fid <= 25", "fid <= full + 2", "macs <= 1e9"."""
    check_one_constraint(max_fid=max_fid, fid_within=fid_within, max_macs=max_macs)
    if max_fid is not None:
        return f"fid <= {number(max_fid)}"
    if fid_within is not None:
        return f"fid <= full + {number(fid_within)}"
    return f"macs <= {number(max_macs)}"


def choose(points: list[Point], **kwargs: Any) -> Point:
    """The first of `ranked(points, ...)`: see there."""
    return ranked(points, **kwargs)[0]


def ranked(
    points: list[Point],
    *,
    where: str,
    max_fid: float | None = None,
    fid_within: float | None = None,
    full: Point | None = None,
    max_macs: float | None = None,
    cost: str = "macs",
) -> list[Point]:
    """The points that meet the one constraint given, the chosen one first, then in the order it
    would be chosen; `where` names the study in messages.

    The quality is the study's metric (`Point.quality`, the FID unless it measures another), and
    a bound on it holds only when the upper end of its interval is within it:
    max_fid: quality_high <= max_fid; fid_within: the upper end of the PAIRED difference to the
    uncompressed model (`full`) <= fid_within. Both take the lowest `cost` (MACs, or the measured
    latency of a latency study), ties to the lower
    quality. max_macs: the lowest quality, ties to the fewer MACs; then the plan hash. Evaluations
    without an interval count their value. StoreError if none fits, naming what would.
    """
    check_one_constraint(max_fid=max_fid, fid_within=fid_within, max_macs=max_macs)
    points = [p for p in points if p.macs is not None and p.quality is not None
              and cost_of(p, cost) is not None]
    if not points:
        raise StoreError(f"{where} has no evaluated plans yet; run 'edgediff evaluate' or a search first")
    if max_macs is not None:
        feasible = [p for p in points if p.macs <= max_macs]
        if not feasible:
            lowest = number(min(p.macs for p in points))
            raise StoreError(
                f"no plan in {where} has MACs <= {number(max_macs)} (lowest is {lowest}); relax --max-macs"
            )
        return sorted(feasible, key=lambda p: (p.quality, p.macs, p.plan_hash))
    metric = points[0].objective.upper()
    if max_fid is not None:
        def bound_of(p: Point) -> float | None:
            return p.quality_high if p.quality_high is not None else p.quality

        limit, option, wanted = max_fid, "--max-fid", f"{metric} <= {number(max_fid)}"
        interval = any(p.quality_high is not None for p in points)
    else:
        if full is None:
            raise ValueError("fid_within needs the full model's point")

        def bound_of(p: Point) -> float | None:
            return p.delta_bound(full)

        limit, option = fid_within, "--fid-within"  # type: ignore[assignment]
        wanted = f"{metric} <= full + {number(fid_within)}"  # type: ignore[arg-type]
        interval = any(p.delta_high is not None for p in points)
        if not interval:
            wanted += f" = {number(full.quality + fid_within)}"  # type: ignore[operator]
    if interval:
        wanted += " at the upper end of its 95% interval"
    bounds = {p.plan_hash: bound_of(p) for p in points}
    feasible = [p for p in points if bounds[p.plan_hash] is not None and bounds[p.plan_hash] <= limit]
    if not feasible:
        known = [p for p in points if bounds[p.plan_hash] is not None]
        closest = min(known, key=lambda p: (bounds[p.plan_hash], p.macs, p.plan_hash))
        value = bounds[closest.plan_hash]
        # the plan's value, and the option's value that would admit it
        shown = closest.quality if fid_within is not None and not interval else value
        raise StoreError(
            f"no plan in {where} has {wanted} (lowest is {number(shown)}, plan {closest.plan_hash[:12]}: "
            f"{option} {number(value)} would pick it); relax {option}"
            + (" or measure more images to narrow the intervals" if interval else ""))
    return sorted(feasible, key=lambda p: (cost_of(p, cost), p.quality, p.plan_hash))


def meets(point: Point, full: Point | None, *, max_fid: float | None = None,
          fid_within: float | None = None, max_macs: float | None = None) -> bool:
    """Whether one point meets the one constraint given (the bounds as in `ranked`)."""
    if max_macs is not None:
        return point.macs is not None and point.macs <= max_macs
    if max_fid is not None:
        bound = point.quality_high if point.quality_high is not None else point.quality
        return bound is not None and bound <= max_fid
    bound = point.delta_bound(full)
    return bound is not None and fid_within is not None and bound <= fid_within


def number(value: float) -> str:
    """A number for messages: 6 significant digits, exponents as in 1e9."""
    return f"{value:.6g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")
