"""A multi-fidelity study's rank correlations: the dashboard's study summary and `edgediff front`
show one small table of each rung against the final measurement."""

from __future__ import annotations

from dashboards.render import Links, summary_html
from dashboards.views import study_view
from edgediff.cli import main
from evaluators.plan import ModelRef, Plan, Sampling
from storage import EvaluationRecord, Store

SPEC_HASH = "5" * 64


def _evaluate(store: Store, plan: Plan, stage: str, images: int, value: float, objective: str) -> None:
    record = EvaluationRecord(model="digits-dit", spec_hash=SPEC_HASH, plan_hash=plan.content_hash(),
                              status="ok", num_images=images, device="cpu", stage=stage,
                              macs_per_image=100 * plan.sampling.num_inference_steps,
                              fid=value if objective == "fid" else None,
                              extra={"quality": {"objective": objective, "value": value}})
    store.record_candidate_evaluation("s", plan_json=plan.to_json(), plan_hash=plan.content_hash(),
                                      method="optuna", label=None, record=record)


def test_study_page_and_front_show_the_rank_correlation_of_each_rung(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    plans = [Plan(ModelRef("digits-dit", "DiTTransformer2DModel"), Sampling(steps, 1.5))
             for steps in (2, 3, 4, 5)]
    with Store.open(url) as store:
        store.create_study("s", model="digits-dit", spec_json='{"num_images": 16}', spec_hash=SPEC_HASH)
        for k, plan in enumerate(plans):
            _evaluate(store, plan, "rung-4", 4, 0.5 - 0.1 * k, "fidelity")
            _evaluate(store, plan, "full", 16, 40.0 - k * k, "fid")  # same order: rho = 1
        view = study_view(store, "s")
    [row] = view["rungs"]
    assert (row["stage"], row["against"], row["plans"], row["rho"]) == ("rung-4", "full", 4, 1.0)
    links = Links(study=lambda s: s, plan=lambda s, h: h, plan_json=lambda s, h: h,
                  samples=lambda s, h: None)
    html = summary_html(view, links)
    assert 'id="rungs"' in html and "Spearman" in html and "rung-4" in html and "1.000" in html
    assert main(["front", "s", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "Spearman rho" in out and "rung-4" in out and "full (16)" in out
