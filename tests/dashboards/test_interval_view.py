"""The plan view and the front table show the quality metric's interval and the paired difference."""

from __future__ import annotations

from dashboards.render import Links, plan_fragment
from dashboards.views import plan_view
from edgediff.cli import main
from evaluators.plan import ModelRef, Plan, Sampling
from storage import EvaluationRecord, Store

QUALITY = {"objective": "fid", "value": 21.5, "low": 19.25, "high": 24.75,
           "delta": 1.5, "delta_low": 0.5, "delta_high": 2.625}


def test_plan_view_and_front_table_show_the_intervals(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    plan = Plan(ModelRef("digits-dit", "DiTTransformer2DModel"), Sampling(4, 1.5))
    record = EvaluationRecord(model="digits-dit", spec_hash="5" * 64, plan_hash=plan.content_hash(),
                              status="ok", num_images=8, device="cpu", macs_per_image=10,
                              fid=21.5, extra={"quality": QUALITY})
    with Store.open(url) as store:
        store.create_study("s", model="digits-dit", spec_json="{}", spec_hash="5" * 64)
        store.record_candidate_evaluation("s", plan_json=plan.to_json(), plan_hash=plan.content_hash(),
                                          method="manual", label=None, record=record)
        view = plan_view(store, "s", plan.content_hash())
    links = Links(study=lambda s: s, plan=lambda s, h: h, plan_json=lambda s, h: h,
                  samples=lambda s, h: None)
    html = plan_fragment(view, links)
    assert "FID, 95% interval" in html and "[19.250, 24.750]" in html
    assert "+1.500 [+0.500, +2.625]" in html
    assert main(["front", "s", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "FID [95%]" in out and "21.500 [19.250, 24.750]" in out
    assert "1.500 [0.500, 2.625]" in out
