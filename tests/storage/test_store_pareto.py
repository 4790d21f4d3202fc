"""The MACs/FID Pareto front and hypervolume on hand-made points."""

from __future__ import annotations

import pytest

from storage import Point, hypervolume_2d, pareto_front


def pt(name: str, macs: int | None, fid: float | None, *methods: str, ids: tuple[int, ...] = ()) -> Point:
    return Point(plan_hash=name, macs=macs, fid=fid, methods=methods or ("greedy",), candidate_ids=ids)


def hashes(points: list[Point]) -> list[str]:
    return [p.plan_hash for p in points]


def test_dominated_points_are_dropped_and_the_front_is_sorted_by_macs():
    points = [pt("c", 300, 5.0), pt("a", 100, 20.0), pt("b", 200, 10.0), pt("worse", 250, 12.0)]
    points.append(pt("d", 400, 5.0))
    # "worse" loses to b (fewer MACs and lower FID); d has c's FID at more MACs.
    assert hashes(pareto_front(points)) == ["a", "b", "c"]


def test_equal_in_one_objective_and_worse_in_the_other_is_dominated():
    assert hashes(pareto_front([pt("a", 100, 10.0), pt("same-macs", 100, 11.0)])) == ["a"]
    assert hashes(pareto_front([pt("a", 100, 10.0), pt("same-fid", 150, 10.0)])) == ["a"]


def test_exact_ties_between_different_plans_are_all_kept():
    front = pareto_front([pt("y", 100, 10.0), pt("x", 100, 10.0), pt("z", 50, 30.0)])
    assert hashes(front) == ["z", "x", "y"]  # macs, then fid, then plan hash


def test_one_plan_from_several_methods_is_one_point_listing_them():
    front = pareto_front([pt("p", 100, 10.0, "optuna", ids=(7,)), pt("p", 100, 10.0, "greedy", ids=(3,))])
    assert len(front) == 1
    assert front[0].methods == ("greedy", "optuna")
    assert front[0].candidate_ids == (3, 7)


def test_points_without_fid_or_macs_are_left_out():
    unmeasured = [pt("no-fid", 10, None), pt("no-macs", None, 1.0), pt("nan", 5, float("nan"))]
    front = pareto_front([*unmeasured, pt("a", 100, 10.0)])
    assert hashes(front) == ["a"]
    assert pareto_front([]) == []


def test_hypervolume_of_a_hand_computed_front():
    points = [pt("a", 1, 4.0), pt("b", 2, 2.0), pt("c", 3, 1.0), pt("dominated", 3, 3.0)]
    # Reference (5, 5): strips [1,2)x(5-4) + [2,3)x(5-2) + [3,5)x(5-1) = 1 + 3 + 8.
    assert hypervolume_2d(points, (5, 5)) == pytest.approx(12.0)


def test_hypervolume_ignores_points_outside_the_reference():
    points = [pt("a", 1, 4.0), pt("too-costly", 6, 0.5), pt("too-poor", 0, 9.0)]
    # too-poor dominates nothing inside the box, but it is on the front; only "a" counts: (5-1)*(5-4).
    assert hypervolume_2d(points, (5, 5)) == pytest.approx(4.0)
    assert hypervolume_2d([], (5, 5)) == 0.0
    assert hypervolume_2d([pt("tie-a", 1, 4.0), pt("tie-b", 1, 4.0)], (5, 5)) == pytest.approx(4.0)
