"""The dashboard's JSON API and pages, served over a store filled by a small real search."""

from __future__ import annotations

import json

import pytest
from dashboard_helpers import add_manual_point, copy_store, serve_in_thread

from evaluators.plan import Plan
from storage import Store, normalized_hypervolume, pareto_front


def _hashes(points: list[dict]) -> list[str]:
    return [p["plan_hash"] for p in points]


def test_study_list(served, searched) -> None:
    status, body = served.json("/api/studies")
    assert status == 200
    assert {s["name"]: s["model"] for s in body["studies"]} == {"dash-dit": "digits-dit",
                                                               "dash-unet": "digits-unet"}
    with Store.open(searched.url) as store:
        for study in body["studies"]:
            assert study["candidates"] == len(store.candidates(study["name"]))


@pytest.mark.parametrize("study", ["dash-dit", "dash-unet"])
def test_study_view_matches_the_store_and_the_search(served, searched, study) -> None:
    status, view = served.json(f"/api/studies/{study}")
    assert status == 200
    result = searched.results[study]
    baseline = "greedy" if study == "dash-dit" else "deepcache-grid"  # each family's own
    assert list(view["methods"]) == [baseline, "optuna"]  # the baseline first
    with Store.open(searched.url) as store:
        full = store.full_model_point(study)
        assert view["full"]["plan_hash"] == full.plan_hash and view["full"]["macs_ratio"] == 1.0
        assert (view["reference_point"]["macs"], view["reference_point"]["fid"]) == result.reference_point
        for method, data in view["methods"].items():
            points = store.points(study, method=method)
            assert sorted(_hashes(data["points"])) == sorted(p.plan_hash for p in points)
            assert _hashes(data["front"]) == [p.plan_hash for p in pareto_front(points)]
            assert data["hypervolume"] == pytest.approx(result.methods[method].hypervolume)
            # the curve: one step per finished plan, never falling, ending at the method's volume
            history = data["history"]
            assert [h["evaluations"] for h in history] == list(range(1, len(history) + 1))
            assert len(history) == len({c.plan_hash for c in store.candidates(study, method=method)})
            volumes = [h["hypervolume"] for h in history]
            assert volumes == sorted(volumes)
            assert volumes[-1] == pytest.approx(data["hypervolume"])
            assert volumes[-1] == pytest.approx(normalized_hypervolume(points, full))
        assert _hashes(view["front"]) == [p.plan_hash for p in store.front(study)]


def test_front_endpoint_per_method(served, searched) -> None:
    status, body = served.json("/api/studies/dash-unet/front?method=optuna")
    assert status == 200 and body["method"] == "optuna"
    with Store.open(searched.url) as store:
        assert _hashes(body["front"]) == [p.plan_hash for p in store.front("dash-unet", method="optuna")]
        full = store.full_model_point("dash-unet")
    for point in body["front"]:
        assert point["macs_ratio"] == pytest.approx(full.macs / point["macs"])
        assert point["fid_delta"] == pytest.approx(point["fid"] - full.fid)
    status, body = served.json("/api/studies/dash-unet/front?method=annealing")
    assert status == 404 and "annealing" in body["error"] and "deepcache-grid" in body["error"]


def test_plan_view_of_a_transformer_plan(served, searched) -> None:
    _, view = served.json("/api/studies/dash-dit")
    point = view["methods"]["greedy"]["points"][0]
    status, plan = served.json(f"/api/studies/dash-dit/plans/{point['plan_hash'][:10]}")  # a prefix
    assert status == 200 and plan["plan_hash"] == point["plan_hash"]
    assert plan["point"]["fid"] == point["fid"] and plan["point"]["macs"] == point["macs"]
    assert "greedy" in [c["method"] for c in plan["candidates"]]
    assert [e["stage"] for e in plan["evaluations"]] == ["full"]
    techniques = plan["techniques"]
    stored = Plan.from_dict(plan["plan"])
    assert techniques["kind"] == "attention"
    assert techniques["methods"] == [list(row) for row in stored.attention.methods]
    assert (techniques["layers"], techniques["steps"]) == (stored.attention.num_layers, stored.num_steps)
    assert plan["samples"]["count"] == 8 and plan["full_samples"]["count"] == 8
    assert plan["samples"]["seeds"] == plan["full_samples"]["seeds"]  # the same seeds side by side


def test_plan_view_of_a_deepcache_plan(served) -> None:
    _, view = served.json("/api/studies/dash-unet")
    for point in view["methods"]["deepcache-grid"]["points"]:
        _, plan = served.json(f"/api/studies/dash-unet/plans/{point['plan_hash']}")
        techniques, stored = plan["techniques"], Plan.from_dict(plan["plan"])
        assert techniques["kind"] == "schedule"
        full_steps = set(stored.deepcache.full_step_indices(stored.num_steps))
        assert [s for s, kind in enumerate(techniques["row"]) if kind == "full"] == sorted(full_steps)
        assert techniques["branch"] == stored.deepcache.branch


def test_plan_download_and_samples(served, searched) -> None:
    _, view = served.json("/api/studies/dash-dit")
    plan_hash = view["front"][0]["plan_hash"]
    status, headers, body = served.get(f"/api/studies/dash-dit/plans/{plan_hash}/plan.json")
    assert status == 200 and "attachment" in headers["content-disposition"]
    assert Plan.from_json(body.decode()).content_hash() == plan_hash  # the file apply_plan loads
    status, headers, body = served.get(f"/api/studies/dash-dit/plans/{plan_hash}/samples.png")
    assert status == 200 and headers["content-type"] == "image/png"
    with Store.open(searched.url) as store:
        assert body == store.samples("dash-dit", plan_hash).png


def test_errors_are_one_line_with_the_fix(served) -> None:
    status, body = served.json("/api/studies/nope")
    assert status == 404 and "no study 'nope'" in body["error"] and "dash-dit" in body["error"]
    status, body = served.json("/api/studies/dash-dit/plans/ffffffffffff")
    assert status == 404 and "no plan" in body["error"]
    status, body = served.json("/api/studies/dash-dit/plans/ab")
    assert status == 404 and "too short" in body["error"]
    status, _, page = served.get("/studies/nope")
    assert status == 404 and b"no study" in page and b"<script" not in page


def test_pages_and_assets(served) -> None:
    status, _, page = served.get("/")
    assert status == 200 and b"dash-dit" in page and b"dash-unet" in page
    status, _, page = served.get("/studies/dash-dit")
    assert status == 200 and b'id="front-plot"' in page
    data = page.split(b'id="study-data">')[1].split(b"</script>")[0]
    figures = json.loads(data)
    names = [trace["name"] for trace in figures["front"]["data"]]
    assert "full model" in names and any(n.startswith("greedy: front") for n in names)
    assert any(n.startswith("optuna: front") for n in names)
    for path in ("/static/plotly.min.js", "/static/dashboard.js", "/static/dashboard.css"):
        status, _, body = served.get(path)
        assert status == 200 and len(body) > 1000, path


def test_serves_no_file_outside_its_own(served) -> None:
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2f..%2fpyproject.toml",
                 "/static/%2e%2e/%2e%2e/pyproject.toml", "/../pyproject.toml"):
        status, _, body = served.get(path)
        assert status == 404, path
        assert b"import" not in body and b"[project]" not in body


def test_figures_follow_new_evaluations(searched, tmp_path) -> None:
    """While a search writes, the figures endpoint reports a new version with the new point."""
    url = copy_store(searched.url, tmp_path)
    server = serve_in_thread(url)
    served = next(server)
    try:
        _, before = served.json("/api/studies/dash-unet/figures")
        since = f"/api/studies/dash-unet/figures?since={before['version']}"
        assert served.json(since)[1] == {"version": before["version"]}  # nothing new: no figures
        plan_hash = add_manual_point(url, "dash-unet")
        _, after = served.json(since)
        assert after["version"] != before["version"]
        manual = [t for t in after["front"]["data"] if t["name"].startswith("manual: all")]
        assert manual and manual[0]["customdata"][0][0] == plan_hash
        assert "manual" in after["summary_html"]
    finally:
        server.close()


def test_any_study_name_and_nan_values(searched, tmp_path) -> None:
    """A name with HTML and non-Latin characters is escaped on the pages and downloads with its
    name; a FID the store could not keep as a number is JSON null."""
    from urllib.parse import quote

    from storage import EvaluationRecord

    url = copy_store(searched.url, tmp_path)
    name = '研究 <b>"x" & y'
    with Store.open(url) as store:
        source = store.get_study("dash-unet")
        full = store.full_model_point("dash-unet")
        store.create_study(name, model=source.model, spec_json=source.spec_json, spec_hash=source.spec_hash,
                           method="manual")
        plan_json = store.plan_json("dash-unet", full.plan_hash)
        store.add_candidate(name, plan_json=plan_json, plan_hash=full.plan_hash, method="full")
        record = EvaluationRecord(model=source.model, spec_hash=source.spec_hash, plan_hash="9" * 64,
                                  status="ok", num_images=8, device="cpu", macs_per_image=1, fid=float("nan"))
        store.record_candidate_evaluation(name, plan_json=plan_json, plan_hash="9" * 64, method="manual",
                                          record=record)
    server = serve_in_thread(url)
    served = next(server)
    try:
        status, page = served.get(f"/studies/{quote(name, safe='')}")[::2]
        assert status == 200 and b"<b>" not in page and "研究".encode() in page
        status, view = served.json(f"/api/studies/{quote(name, safe='')}")
        assert status == 200 and view["methods"]["manual"]["points"][0]["fid"] is None
        path = f"/api/studies/{quote(name, safe='')}/plans/{full.plan_hash}/plan.json"
        status, headers, _ = served.get(path)
        assert status == 200 and "filename*=UTF-8''" in headers["content-disposition"]
        assert quote(name, safe="") in headers["content-disposition"]
    finally:
        server.close()
