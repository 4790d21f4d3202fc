"""Choosing one plan from a study's points by one constraint (pure Python, no SQL)."""

from __future__ import annotations

from storage.errors import StoreError
from storage.pareto import Point


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


def choose(
    points: list[Point],
    *,
    where: str,
    max_fid: float | None = None,
    fid_within: float | None = None,
    full_fid: float | None = None,
    max_macs: float | None = None,
) -> Point:
    """The point chosen by the one constraint given; `where` names the study in messages.

    max_fid / fid_within (fid <= full_fid + fid_within): the fewest MACs, ties to the lower fid;
    max_macs: the lowest fid, ties to the fewer MACs; then the plan hash. StoreError if none fits.
    """
    check_one_constraint(max_fid=max_fid, fid_within=fid_within, max_macs=max_macs)
    points = [p for p in points if p.macs is not None and p.fid is not None]
    if not points:
        raise StoreError(f"{where} has no evaluated plans yet; run 'edgediff evaluate' or a search first")
    if max_macs is not None:
        feasible = [p for p in points if p.macs <= max_macs]
        if not feasible:
            lowest = number(min(p.macs for p in points))
            raise StoreError(
                f"no plan in {where} has MACs <= {number(max_macs)} (lowest is {lowest}); relax --max-macs"
            )
        return min(feasible, key=lambda p: (p.fid, p.macs, p.plan_hash))
    if max_fid is not None:
        bound, wanted, option = max_fid, f"FID <= {number(max_fid)}", "--max-fid"
    else:
        if full_fid is None:
            raise ValueError("fid_within needs the full model's fid")
        bound = full_fid + fid_within
        wanted, option = f"FID <= full + {number(fid_within)} = {number(bound)}", "--fid-within"
    feasible = [p for p in points if p.fid <= bound]
    if not feasible:
        lowest = number(min(p.fid for p in points))
        raise StoreError(f"no plan in {where} has {wanted} (lowest is {lowest}); relax {option}")
    return min(feasible, key=lambda p: (p.macs, p.fid, p.plan_hash))


def number(value: float) -> str:
    """A number for messages: 6 significant digits, exponents as in 1e9."""
    return f"{value:.6g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")
