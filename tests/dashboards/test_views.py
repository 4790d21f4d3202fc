"""The dashboard's view functions on hand-made points: ratios, NaN and the hypervolume curve."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from dashboards.figures import front_figure, log_ticks
from dashboards.views import hypervolume_history, point_dict
from storage import HistoryEntry, Point, normalized_hypervolume, reference_point

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
FULL = Point(plan_hash="f" * 64, macs=100, fid=10.0, latency=1.0)


def test_ratios_against_the_full_model() -> None:
    point = point_dict(Point(plan_hash="a" * 64, macs=25, fid=12.5, latency=0.5), FULL)
    assert (point["macs_ratio"], point["speedup"], point["fid_delta"]) == (4.0, 2.0, 2.5)
    assert point_dict(FULL, None)["macs_ratio"] is None


def test_nan_is_null_and_never_a_hypervolume() -> None:
    point = point_dict(Point(plan_hash="a" * 64, macs=25, fid=math.nan), FULL)
    assert point["fid"] is None and point["fid_delta"] is None
    broken_full = Point(plan_hash="f" * 64, macs=100, fid=math.nan)
    assert reference_point(broken_full) is None
    assert normalized_hypervolume([Point(plan_hash="a" * 64, macs=25, fid=5.0)], broken_full) == 0.0


def _outcome(k: int, plan: str, *, stage="full", status="ok", fid=5.0, macs=50, minutes=0, passed=None):
    return HistoryEntry(candidate_id=k, plan_hash=plan * 64, method="optuna", proposed_at=T0, evaluation_id=k,
                   stage=stage, status=status, macs_per_image=macs, fid=fid, started_at=T0,
                   finished_at=T0 + timedelta(minutes=minutes), passed_screen=passed)


def test_hypervolume_curve_counts_each_finished_plan_once() -> None:
    outcomes = [
        _outcome(1, "a", fid=15.0, macs=50, minutes=1),  # HV (100-50)(20-15) = 250 -> 0.25
        _outcome(2, "b", stage="screen", minutes=2, passed=True),  # not done yet
        _outcome(3, "b", fid=10.0, macs=40, minutes=3),  # dominates a: (100-40)(20-10) = 600 -> 0.6
        _outcome(4, "c", status="failed", fid=None, macs=None, minutes=4),  # counts, adds nothing
        _outcome(5, "d", stage="screen", minutes=5, passed=False),  # stopped: counts
    ]
    history = hypervolume_history(reversed(outcomes), FULL)  # the order they finished, not given
    assert [h["plan_hash"][0] for h in history] == ["a", "b", "c", "d"]
    assert [h["status"] for h in history] == ["measured", "measured", "failed", "stopped at screen"]
    assert [h["hypervolume"] for h in history] == pytest.approx([0.25, 0.6, 0.6, 0.6])


@pytest.mark.parametrize(("low", "high", "ticks"), [
    (27.3, 210.0, [20, 30, 50, 70, 100, 200, 300]),
    (20.0, 80.0, [20, 30, 50, 70, 100]),
    (0.5, 3.0, [0.5, 0.7, 1, 2, 3]),
])
def test_log_axis_ticks_cover_the_range_in_plain_numbers(low, high, ticks) -> None:
    assert log_ticks(low, high) == pytest.approx(ticks)


def test_front_figure_goes_log_with_plain_labels_when_a_plan_breaks() -> None:
    def view(fids):
        points = [point_dict(Point(plan_hash=f"{k}" * 64, macs=10 * (k + 1), fid=f), FULL)
                  for k, f in enumerate(fids)]
        return {"methods": {"optuna": {"points": points, "front": points[:1]}},
                "full": point_dict(FULL, None)}

    assert front_figure(view([12.0, 15.0])).layout.yaxis.type is None
    axis = front_figure(view([12.0, 190.0])).layout.yaxis
    assert axis.type == "log" and list(axis.ticktext) == ["10", "20", "30", "50", "70", "100", "200"]
