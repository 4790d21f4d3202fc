"""A budget-2 search end to end on a tiny FLUX-family pipeline saved to a folder: diffusers' own
caches at their library defaults (the baseline) beside Optuna's searched plans on one front."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluators.plan import Plan
from evaluators.spec import EvalSpec
from evaluators.zoo.tiny_pipelines import save_tiny_pipeline
from search.driver import SearchConfig, run_search
from storage import FULL_METHOD, Store

PROMPTS = ("a red square", "a blue circle", "a green line")


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def tiny_search(tmp_path: Path, kind: str, images: int, guidance: float) -> SearchConfig:
    """A budget-2 search on a tiny `kind` pipeline folder (fidelity: no digits FID on these), run."""
    folder = save_tiny_pipeline(kind, tmp_path / f"tiny-{kind}", PROMPTS)
    spec = EvalSpec(num_images=images, num_inference_steps=4, batch_size=images,
                    guidance_scale=guidance, prompts=PROMPTS[:images], feature="digits",
                    quality="fidelity")
    config = SearchConfig(study=f"tiny-{kind}", model=str(folder), spec=spec, budget=2, workers=1,
                          db_url=f"sqlite:///{tmp_path / 'store.db'}",
                          cache_dir=str(tmp_path / "cache"), threads=1)
    assert run_search(config).stopped == "finished"
    return config


def test_tiny_flux_search_puts_library_defaults_beside_searched_plans(tmp_path: Path,
                                                                      ray_local) -> None:
    config = tiny_search(tmp_path, "flux", images=3, guidance=3.5)
    with Store.open(config.db_url) as store:
        full = store.full_model_point(config.study)
        baseline = store.candidates(config.study, method="library-default")
        searched = store.candidates(config.study, method="optuna")
        assert len(baseline) == 2 and len(searched) >= 1
        assert any(c.label.startswith("library default: FirstBlockCache") for c in baseline)
        fbc = next(c for c in baseline if "FirstBlockCache" in c.label)
        assert Plan.from_json(fbc.plan_json).section("first_block_cache").threshold == 0.05
        points = {p.plan_hash: p for p in store.points(config.study)}
        assert points[fbc.plan_hash].macs < full.macs  # what executed: blocks were skipped
        assert store.candidates(config.study, method=FULL_METHOD)


def test_tiny_sdxl_search_puts_the_deepcache_grid_beside_searched_plans(tmp_path: Path,
                                                                        ray_local) -> None:
    config = tiny_search(tmp_path, "sdxl", images=2, guidance=3.0)
    with Store.open(config.db_url) as store:
        full = store.full_model_point(config.study)
        grid = store.candidates(config.study, method="deepcache-grid")
        assert len(grid) == 2 and store.candidates(config.study, method="optuna")
        points = {p.plan_hash: p for p in store.points(config.study)}
        cached = [points[c.plan_hash] for c in grid if c.plan_hash in points]
        assert cached and all(p.macs < full.macs for p in cached)  # DeepCache skips the deep U-Net
        assert all(Plan.from_json(c.plan_json).section("deepcache") for c in grid)


@pytest.mark.slow
def test_tiny_sd3_search_runs_the_caches_that_fit_sd3(tmp_path: Path, ray_local) -> None:
    config = tiny_search(tmp_path, "sd3", images=2, guidance=3.0)
    with Store.open(config.db_url) as store:
        baseline = store.candidates(config.study, method="library-default")
        assert len(baseline) == 2 and store.candidates(config.study, method="optuna")
        sections = {n for c in baseline for n in Plan.from_json(c.plan_json).section_names}
        assert "first_block_cache" not in sections  # refused on SD3, so never proposed
        assert any(c.label == "library default: TaylorSeer" for c in baseline)
        points = {p.plan_hash for p in store.points(config.study)}
        assert all(c.plan_hash in points for c in baseline)  # both measured, neither failed
