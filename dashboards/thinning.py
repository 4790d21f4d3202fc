"""The study page of a large study: which evaluated plans it draws, and its hypervolume curves.

A study of 100,000 evaluations cannot send every plan to the browser (28 MB, 11 s). A method's
cloud of plans is drawn whole up to `MAX_POINTS`; above that, every plan on the method's front is
kept, and of the others one per cell of a grid over the plot (finer in a thin band just above the
front, where the choices are), so the page stays under a few MB whatever the study's size. A zoom
asks the server again for the window it shows (`window`), thinned the same way, so the points
reappear as the user looks closer. The hypervolume curve of a method with more than
`MAX_HISTORY` evaluations keeps the evaluations that changed it (and the first and last): drawn as
a staircase, it is the same curve.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from storage import Point, normalized_hypervolume
from storage.objectives import as_utc

MAX_POINTS = 3000  # a method's plans drawn whole up to this many
GRID = (80, 50)  # cells across (MACs) and up (FID) of the plot, one plan kept per cell
NEAR_FRONT = 0.05  # the band above the front (FID within 5% of the front's) gets a 4x finer grid
NEAR_GRID = (320, 200)
MAX_HISTORY = 1000  # a method's hypervolume curve listed whole up to this many evaluations

Window = tuple[tuple[float, float], tuple[float, float]]  # ((macs low, high), (fid low, high))


@dataclass(frozen=True)
class Cloud:
    """Plans in objective space as arrays: `plans` (hashes), `macs`, `fid` (NaN where unknown)."""

    plans: np.ndarray
    macs: np.ndarray
    fid: np.ndarray

    @classmethod
    def of(cls, rows: Sequence[tuple[str, int, float | None]]) -> Cloud:
        """From (plan_hash, macs, fid) rows."""
        return cls(np.array([r[0] for r in rows], dtype=object),
                   np.array([r[1] for r in rows], dtype=float),
                   np.array([r[2] for r in rows], dtype=float))  # None -> NaN

    def __len__(self) -> int:
        return len(self.plans)

    def where(self, mask: np.ndarray) -> Cloud:
        return Cloud(self.plans[mask], self.macs[mask], self.fid[mask])


def front_hashes(cloud: Cloud) -> list[str]:
    """The plans on the MACs/FID front, by `storage.pareto_front`'s rule: no other plan is <= in
    both and < in one; equal (macs, fid) all stay (a plan listed twice: twice)."""
    cloud = cloud.where(np.isfinite(cloud.fid))
    if not len(cloud):
        return []
    order = np.lexsort((cloud.fid, cloud.macs))
    macs, fid = cloud.macs[order], cloud.fid[order]
    starts = np.r_[True, macs[1:] != macs[:-1]]  # each MACs value's lowest FID comes first
    group = np.cumsum(starts) - 1
    lowest = fid[starts]
    before = np.r_[np.inf, np.minimum.accumulate(lowest)[:-1]]  # lowest FID at fewer MACs
    keep = (lowest < before)[group] & (fid == lowest[group])
    return cloud.plans[order[keep]].tolist()


def thin(cloud: Cloud, front: Iterable[str], *, log_fid: bool, window: Window | None = None,
         limit: float | None = None) -> list[str]:
    """The plans to draw (each plan once in `cloud`): all of them inside `window` (the whole range
    if None) up to `limit`; above it the `front` plans inside it, and one plan per grid cell (its
    lowest FID), with a finer grid in the band just above the front. `limit`: MAX_POINTS if None."""
    limit = MAX_POINTS if limit is None else limit
    if window is not None:
        (x0, x1), (y0, y1) = window
        cloud = cloud.where((cloud.macs >= x0) & (cloud.macs <= x1) & (cloud.fid >= y0) & (cloud.fid <= y1))
    if len(cloud) <= limit:  # plans without a FID included: listed, though not drawn
        return cloud.plans.tolist()
    cloud = cloud.where(np.isfinite(cloud.fid) & ((cloud.fid > 0) if log_fid else True))
    y = np.log10(cloud.fid) if log_fid else cloud.fid
    on_front = np.isin(cloud.plans, list(set(front)))
    stair = _staircase(cloud.macs[on_front], cloud.fid[on_front])
    near = cloud.fid <= stair(cloud.macs) * (1 + NEAR_FRONT)
    kept = on_front.copy()
    for grid, chosen in ((GRID, ~near), (NEAR_GRID, near)):  # read here: tests shrink them
        kept[_one_per_cell(cloud.macs, y, cloud.fid, chosen, grid)] = True
    return cloud.plans[kept].tolist()


def _staircase(front_macs: np.ndarray, front_fid: np.ndarray) -> Any:
    """macs -> the front's FID there (its lowest with MACs <= macs; infinite left of it)."""
    order = np.argsort(front_macs, kind="stable")
    xs = front_macs[order]
    lows = np.minimum.accumulate(front_fid[order]) if len(order) else np.array([np.inf])

    def at(macs: np.ndarray) -> np.ndarray:
        index = np.searchsorted(xs, macs, side="right") - 1
        return np.where(index >= 0, lows[np.clip(index, 0, None)], np.inf)

    return at


def _one_per_cell(x: np.ndarray, y: np.ndarray, fid: np.ndarray, chosen: np.ndarray,
                  grid: tuple[int, int]) -> np.ndarray:
    """Indices of the lowest-FID point of each occupied cell, among the `chosen` ones."""
    index = np.flatnonzero(chosen)
    if not len(index):
        return index
    columns, rows = grid
    cx = _cell(x, columns)[index]
    cy = _cell(y, rows)[index]
    cell = cx * rows + cy
    order = np.lexsort((fid[index], cell))
    _, first = np.unique(cell[order], return_index=True)
    return index[order[first]]


def _cell(values: np.ndarray, count: int) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return np.minimum((scaled * count).astype(int), count - 1)


# --- hypervolume curves ------------------------------------------------------------------------------

def curve(steps: Sequence[tuple[Any, ...]], full: Point | None, *, limit: float | None = None
          ) -> tuple[list[dict[str, Any]], int]:
    """(the curve's entries, the number of plans done) of one method's evaluations in the order
    they were done: (plan_hash, stage, status, macs, fid, passed_screen, finished_at). What counts:
    see `dashboards.views.hypervolume_history`. With more than `limit` steps (MAX_HISTORY if
    None), only the entries that changed the hypervolume, the first and the last are listed."""
    limit = MAX_HISTORY if limit is None else limit
    every = len(steps) <= limit
    done: set[str] = set()
    front: list[Point] = []  # a staircase: MACs rising, FID falling
    front_macs: list[int] = []
    volume = 0.0
    entries: list[tuple[Any, ...]] = []
    last: tuple[Any, ...] | None = None
    for plan_hash, stage, status, macs, fid, passed_screen, finished_at in steps:
        if plan_hash in done or not (stage == "full" or status == "failed" or passed_screen is False):
            continue
        done.add(plan_hash)
        better = (stage == "full" and status == "ok" and macs is not None and fid is not None
                  and math.isfinite(fid) and not _dominated(front, front_macs, macs, fid))
        if better:
            at = bisect.bisect_left(front_macs, macs)
            end = at
            while end < len(front) and front[end].fid >= fid:  # type: ignore[operator]
                end += 1
            front[at:end] = [Point(plan_hash=plan_hash, macs=macs, fid=fid)]
            front_macs[at:end] = [macs]
            volume = normalized_hypervolume(front, full)
        last = (len(done), plan_hash, status, stage, volume, finished_at)
        if every or better or not entries:
            entries.append(last)
    if last is not None and entries[-1] is not last:
        entries.append(last)
    return [_entry(*entry) for entry in entries], len(done)  # dicts and times for the listed only


def _entry(evaluations: int, plan_hash: str, status: str, stage: str, volume: float,
           finished_at: Any) -> dict[str, Any]:
    verdict = "failed" if status == "failed" else ("measured" if stage == "full" else "stopped at screen")
    finished = as_utc(finished_at)
    return {"evaluations": evaluations, "plan_hash": plan_hash, "status": verdict, "hypervolume": volume,
            "finished_at": None if finished is None else finished.isoformat()}


def _dominated(front: list[Point], front_macs: list[int], macs: int, fid: float) -> bool:
    """Whether a front plan has MACs <= macs and FID <= fid: the one with the most MACs <= macs
    has the lowest FID of those."""
    at = bisect.bisect_right(front_macs, macs) - 1
    return at >= 0 and front[at].fid <= fid  # type: ignore[operator]
