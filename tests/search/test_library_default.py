"""The library-default baseline calibrates MagCache's magnitude ratios on the model, at the
plan's step count, and stores them in the plan it measures (no hand-set ratios)."""

from __future__ import annotations

from pathlib import Path

from evaluators.evaluate import Evaluator
from evaluators.spec import EvalSpec
from evaluators.zoo.tiny_pipelines import save_tiny_pipeline
from search.strategies.library_default import LibraryDefaultStrategy, mag_cache_proposals

PROMPTS = ("a red square", "a blue circle")


def test_mag_cache_is_calibrated_at_the_step_count_and_measured(tmp_path: Path) -> None:
    folder = save_tiny_pipeline("flux", tmp_path / "tiny-flux", PROMPTS)
    spec = EvalSpec(num_images=2, num_inference_steps=4, batch_size=2, guidance_scale=3.5,
                    prompts=PROMPTS, feature="digits", quality="fidelity")
    evaluator = Evaluator(str(folder), spec, cache_dir=tmp_path / "cache")
    proposals = mag_cache_proposals("library-default", evaluator.full_plan)
    assert [p.label for p in proposals][0] == "library default: MagCache"
    assert all(p.plan is None and p.prepare["section"] == "mag_cache" for p in proposals)
    options = dict(proposals[0].prepare, threshold=5.0, max_skip_steps=2)
    plan = LibraryDefaultStrategy.prepare_plan(evaluator, **options)
    ratios = plan.section("mag_cache").mag_ratios
    assert len(ratios) == 4 and ratios[0] == 1.0 and all(r > 0 for r in ratios)
    assert plan.notes["geometry"] == evaluator.full_plan.notes["geometry"]
    full = evaluator.reference().measurement
    measured = evaluator.evaluate(plan)
    assert measured.macs_per_image < full.macs_per_image  # calibrated ratios let steps skip
    assert 0 < measured.psnr < float("inf")
