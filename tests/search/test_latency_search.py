"""`--objective latency`: Optuna minimises the measured latency ratio, the study keeps the
objective, and its front and hypervolume are on latency; a resume with the other objective is
refused."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from evaluators.spec import EvalSpec
from search.driver import SearchConfig, run_search
from search.errors import SearchError
from storage import Store, normalized_hypervolume, pareto_front

SPEC = EvalSpec(num_images=4, num_inference_steps=3, batch_size=4, latency_repeats=2)


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow  # Ray start-up and five timed evaluations: about 20 s on 2 cores
def test_latency_objective_search_keys_the_front_on_latency(tmp_path: Path, ray_local) -> None:
    config = SearchConfig(study="lat", model="digits-dit", spec=SPEC, methods=("optuna",), budget=2,
                          workers=1, db_url=f"sqlite:///{tmp_path / 'store.db'}", threads=1,
                          cache_dir=str(tmp_path / "cache"), objective="latency")
    result = run_search(config)
    assert result.objective == "latency" and result.methods["optuna"].done == 2
    with Store.open(config.db_url) as store:
        assert store.get_study("lat").objectives[0] == "latency"
        full = store.full_model_point("lat")
        points = store.points("lat", method="optuna")
        assert all(p.latency and p.latency > 0 for p in points)
        front = result.methods["optuna"].front
        assert [p.plan_hash for p in front] == [p.plan_hash for p in pareto_front(points, "latency")]
        assert result.reference_point == pytest.approx((full.latency, 2 * full.quality))
        assert result.methods["optuna"].hypervolume == pytest.approx(
            normalized_hypervolume(front, full, "latency"))
        assert store.front("lat", method="optuna") == front
        trials = optuna.load_study(study_name="edgediff:lat", storage=config.db_url).get_trials()
        by_hash = {p.plan_hash: p for p in points}
        for trial in trials:  # told the latency relative to the full model's, and the quality
            point = by_hash[trial.user_attrs["plan_hash"]]
            assert trial.values == [pytest.approx(point.latency / full.latency),
                                    pytest.approx(point.quality)]
    with pytest.raises(SearchError, match="study 'lat' minimises latency, not macs"):
        run_search(SearchConfig(**{**config.__dict__, "objective": "macs"}))
