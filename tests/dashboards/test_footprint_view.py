"""The plan view reports the parameters a plan never runs (depth-skip's footprint)."""

from __future__ import annotations

from dashboards.render import Links, plan_fragment
from dashboards.views import plan_view
from edgediff.cli import main
from edgediff.tables import footprint
from evaluators.plan import DepthSkip, ModelRef, Plan, Sampling
from storage import EvaluationRecord, Store

PARAMS = {"params": 859_520_964, "skipped": 336_303_360, "skipped_bytes": {"float16": 672_606_720}}


def test_plan_view_and_cli_show_the_parameters_never_run(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    plan = Plan(ModelRef("sd-1.5", "UNet2DConditionModel"), Sampling(4, 7.5),
                depth_skip=DepthSkip(1))
    record = EvaluationRecord(model="sd-1.5", spec_hash="5" * 64, plan_hash=plan.content_hash(),
                              status="ok", num_images=8, device="cpu", macs_per_image=10,
                              fid=12.0, extra={"params": PARAMS})
    with Store.open(url) as store:
        store.create_study("s", model="sd-1.5", spec_json="{}", spec_hash="5" * 64)
        store.record_candidate_evaluation("s", plan_json=plan.to_json(),
                                          plan_hash=plan.content_hash(), method="manual",
                                          label=None, record=record)
        view = plan_view(store, "s", plan.content_hash())
        [point] = store.points("s")
    assert (point.params, point.params_skipped) == (PARAMS["params"], PARAMS["skipped"])
    assert main(["front", "s", "--db", url]) == 0
    table = capsys.readouterr().out
    assert "params never run" in table and "39.1%" in table
    assert view["footprint"]["skipped"] == PARAMS["skipped"]
    assert round(view["footprint"]["skipped_share"], 3) == 0.391
    links = Links(study=lambda s: s, plan=lambda s, h: h, plan_json=lambda s, h: h,
                  samples=lambda s, h: None)
    html = plan_fragment(view, links)
    assert "parameters never run" in html and "336.3 M of 859.5 M" in html
    assert "39.1%" in html and "672.6 MB of float16" in html
    assert footprint({"params": PARAMS}) == "336.3M/859.5M (39.1%)"
    assert footprint({}) == ""
