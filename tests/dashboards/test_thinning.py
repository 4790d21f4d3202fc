"""A large study's page: the cloud of plans is thinned but keeps every front plan, the page stays
small, a zoom gets the window's plans, and the thinned hypervolume curve is the same staircase."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta, timezone

import pytest
from dashboard_helpers import serve_in_thread

from dashboards import thinning, views
from dashboards.render import study_figures
from evaluators.spec import EvalSpec
from storage import EvaluationRecord, Point, Store, pareto_front

MODEL, SPEC_HASH = "digits-dit", "a" * 64


def _cloud(count: int, seed: int = 0) -> list[tuple[str, int, float]]:
    """(plan_hash, macs, fid) on a front-shaped cloud, ties included."""
    draw = random.Random(seed)
    rows = []
    for k in range(count):
        share = draw.randint(15, 100) / 100
        fid = round(30 * (1 + 0.05 / share * draw.lognormvariate(0, 0.5)), 1)
        rows.append((f"{k:064x}", int(8e9 * share), fid))
    return rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_front_hashes_follow_pareto_front(seed) -> None:
    rows = _cloud(3000, seed)
    expected = pareto_front(Point(plan_hash=h, macs=m, fid=f) for h, m, f in rows)
    assert sorted(thinning.front_hashes(thinning.Cloud.of(rows))) == sorted(p.plan_hash for p in expected)


@pytest.mark.parametrize("log_fid", [False, True])
def test_thinning_keeps_every_front_plan_and_bounds_the_rest(log_fid) -> None:
    rows = _cloud(40_000)
    cloud = thinning.Cloud.of(rows)
    front = thinning.front_hashes(cloud)
    kept = thinning.thin(cloud, front, log_fid=log_fid)
    assert set(front) <= set(kept)
    cells = thinning.GRID[0] * thinning.GRID[1] + thinning.NEAR_GRID[0] * thinning.NEAR_GRID[1]
    assert len(kept) < min(len(rows) / 4, cells + len(front))
    assert len(kept) == len(set(kept))
    small = thinning.Cloud.of(rows[:500])
    whole = thinning.thin(small, thinning.front_hashes(small), log_fid=log_fid)
    assert whole == [h for h, _, _ in rows[:500]]


def test_a_window_keeps_only_its_plans() -> None:
    rows = _cloud(20_000)
    window = ((2e9, 4e9), (30.0, 40.0))
    cloud = thinning.Cloud.of(rows)
    kept = thinning.thin(cloud, thinning.front_hashes(cloud), log_fid=False, window=window)
    inside = [r for r in rows if 2e9 <= r[1] <= 4e9 and 30 <= r[2] <= 40]
    by_hash = {h: (m, f) for h, m, f in rows}
    assert kept and all(2e9 <= by_hash[h][0] <= 4e9 and 30 <= by_hash[h][1] <= 40 for h in kept)
    assert len(kept) == min(len(inside), len(kept)) and len(kept) <= len(inside)


def test_thinned_curve_is_the_same_staircase() -> None:
    draw = random.Random(3)
    full = Point(plan_hash="f" * 64, macs=8_000_000_000, fid=30.0)
    steps = []
    for h, m, f in _cloud(3000, seed=4):
        failed = draw.random() < 0.05
        steps.append((h, "full", "failed" if failed else "ok", None if failed else m,
                      None if failed else f, None, None))
    whole, done = thinning.curve(steps, full, limit=math.inf)
    thin_curve, done_again = thinning.curve(steps, full, limit=100)
    assert done == done_again == len(whole) == 3000
    assert len(thin_curve) < 100 and thin_curve[0] == whole[0] and thin_curve[-1] == whole[-1]
    listed = {e["evaluations"]: e["hypervolume"] for e in thin_curve}
    last = None
    for entry in whole:  # between two listed entries the hypervolume does not move
        last = listed.get(entry["evaluations"], last)
        assert entry["hypervolume"] == last


def _large_study(url: str, count: int) -> str:
    """A study of `count` evaluated plans (two methods, a full model) written through the store."""
    study = "large"
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with Store.open(url) as store:
        store.create_study(study, model=MODEL, spec_json=EvalSpec().to_json(), spec_hash=SPEC_HASH,
                           method="both")
        rows = [("f" * 64, 8_000_000_000, 30.0), *_cloud(count - 1, seed=5)]
        for k, (plan_hash, macs, fid) in enumerate(rows):
            when = start + timedelta(seconds=k)
            record = EvaluationRecord(model=MODEL, spec_hash=SPEC_HASH, plan_hash=plan_hash, status="ok",
                                      num_images=8, device="cpu", macs_per_image=macs, fid=fid,
                                      started_at=when, finished_at=when)
            method = "full" if k == 0 else ("greedy" if k % 5 == 0 else "optuna")
            store.record_candidate_evaluation(study, plan_json="{}", plan_hash=plan_hash, method=method,
                                              record=record)
    return study


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('large') / 'store.db'}"
    return url, _large_study(url, 700)


def test_large_study_page_is_small_and_holds_every_front_plan(large, monkeypatch) -> None:
    url, study = large
    monkeypatch.setattr(thinning, "MAX_POINTS", 100)  # 700 plans stand for 100,000
    monkeypatch.setattr(thinning, "MAX_HISTORY", 50)
    monkeypatch.setattr(thinning, "GRID", (8, 5))
    monkeypatch.setattr(thinning, "NEAR_GRID", (16, 10))
    with Store.open(url) as store:
        view = views.study_view(store, study)
        everything = store.points(study)
        fronts = {m: pareto_front([p for p in everything if m in p.methods]) for m in ("greedy", "optuna")}
        overall = store.front(study)
    payload = json.dumps({**study_figures(view), "view": view})
    assert len(payload) < 150_000  # every plan and curve point sent whole: over 600 KB
    for method, front in fronts.items():
        data = view["methods"][method]
        shown = {p["plan_hash"] for p in data["points"]}
        assert {p.plan_hash for p in front} <= shown
        assert [p["plan_hash"] for p in data["front"]] == [p.plan_hash for p in front]
        assert data["points_total"] == len([p for p in everything if method in p.methods])
        assert len(shown) < data["points_total"] and len(data["history"]) <= 50 + len(front)
        assert data["evaluated"] == data["points_total"]
    assert [p["plan_hash"] for p in view["front"]] == [p.plan_hash for p in overall]
    assert view["counts"] == {"plans": 700, "evaluations_ok": 700, "evaluations_failed": 0}
    names = [trace["name"] for trace in study_figures(view)["front"]["data"]]
    assert any("zoom for more" in name for name in names)


def test_zoom_gets_the_plans_of_the_window(large, monkeypatch) -> None:
    url, study = large
    monkeypatch.setattr(thinning, "MAX_POINTS", 100)
    for served in serve_in_thread(url, refresh_s=0.0):
        status, body = served.json(f"/api/studies/{study}/figures/front?macs=2,4&fid=30,36")
        assert status == 200
        xs = [x for trace in body["front"]["data"] if "all evaluated" in trace["name"]
              for x in _values(trace["x"])]
        assert xs and all(2 <= x <= 4 for x in xs)
        status, body = served.json(f"/api/studies/{study}/figures/front?macs=4,2&fid=30,36")
        assert status == 400 and "LOW < HIGH" in body["error"]
        status, body = served.json(f"/api/studies/{study}/figures/front?fid=30,36")
        assert status == 400 and "macs=LOW,HIGH" in body["error"]


def _values(array) -> list[float]:
    """A Plotly JSON array: a list, or typed binary data (`dtype`, base64 `bdata`)."""
    if isinstance(array, list):
        return array
    import base64

    import numpy as np

    return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
