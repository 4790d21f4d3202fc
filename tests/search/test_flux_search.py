"""`edgediff search --model digits-flux --method both` on the trained FLUX-family model: diffusers'
caches at their published defaults (method library-default) beside Optuna's plans, on digits FID
and fidelity, and both on the front `edgediff front` prints; a budget below the baseline's list
takes the published defaults first."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgediff.cli import main
from evaluators.plan import Plan
from evaluators.spec import EvalSpec
from search.driver import SearchConfig
from search.params.library_cache import DEFAULT_LABEL, library_defaults
from search.strategies import StrategyContext
from search.strategies.library_default import LibraryDefaultStrategy, mag_cache_proposals
from storage import FULL_METHOD, Store, candidate_labels


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize("budget", [1, 2, 4, 6, 100])
def test_a_small_budget_takes_the_published_defaults_first(tmp_path: Path, budget: int) -> None:
    from evaluators.families import facts_of
    from evaluators.runtime import model_ref
    from evaluators.zoo import load_model_on_meta

    model = load_model_on_meta("digits-flux")
    full = facts_of(model).full_plan(model_ref(model, "digits-flux"), 10, 1.5)
    spec = EvalSpec(num_images=4, num_inference_steps=10)
    config = SearchConfig(study="s", model="digits-flux", spec=spec, budget=budget)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with Store.open(url) as store:
        study = store.create_study("s", model="digits-flux", spec_json=spec.to_json(),
                                   spec_hash="h")
        strategy = LibraryDefaultStrategy(StrategyContext(store, study, url, config, {}, full))
        labels = [p.label for p in iter(strategy.ask, None)]
    listed = [label for label, _ in library_defaults(10)]
    listed += [p.label for p in mag_cache_proposals("library-default", full)]  # calibrated
    defaults = [label for label in listed if label.startswith(DEFAULT_LABEL)]
    sweeps = [label for label in listed if label not in defaults]
    assert len(defaults) == 5 and defaults[-1] == "library default: MagCache" and len(sweeps) > 2
    assert all(candidate_labels(label) == [label] for label in listed)  # one label each
    assert labels[:min(budget, 5)] == defaults[:budget]  # the five caches at diffusers' defaults
    assert len(labels) == min(budget, len(listed)) == len(set(labels)) == strategy.total
    assert set(labels) <= set(listed)
    if budget >= 6:  # then the sweeps, the first kept (and the last from 7 on)
        assert labels[5] == sweeps[0]
    if budget >= 7:
        assert labels[-1] == sweeps[-1]


@pytest.mark.slow  # about a minute on 2 shared cores: Ray's start and two worker processes
def test_digits_flux_search_puts_library_defaults_beside_searched_plans(tmp_path: Path, ray_local,
                                                                        capsys) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    assert main(["search", "--model", "digits-flux", "--study", "flux", "--method", "both",
                 "--budget", "2", "--workers", "1", "--threads", "1", "--images", "8",
                 "--steps", "4", "--db", db, "--cache-dir", str(tmp_path / "cache"),
                 "-o", str(tmp_path / "best.json")]) == 0
    printed = capsys.readouterr().out
    assert "front of library-default" in printed and "front of optuna" in printed
    with Store.open(db, create=False) as store:
        full = store.full_model_point("flux")
        defaults = store.candidates("flux", method="library-default")
        searched = store.candidates("flux", method="optuna")
        # a budget of 2 takes the first two published defaults, not a sweep
        assert [c.label for c in defaults] == ["library default: FirstBlockCache",
                                               "library default: TaylorSeer"]
        assert len(searched) == 2
        fbc = Plan.from_json(defaults[0].plan_json).section("first_block_cache")
        assert fbc.threshold == 0.05  # diffusers' FirstBlockCacheConfig default
        points = {p.plan_hash: p for p in store.points("flux")}
        for candidate in defaults + searched:
            point = points[candidate.plan_hash]
            assert point.fid is not None and point.psnr is not None  # FID and fidelity measured
            assert point.macs <= full.macs
        assert full.fid is not None and FULL_METHOD in full.methods
        fronts = {m: store.front("flux", method=m) for m in ("library-default", "optuna")}
        assert all(fronts.values())
    assert main(["front", "flux", "--all", "--db", db]) == 0
    table = capsys.readouterr().out
    assert "library-default" in table and "optuna" in table and "FID [95%]" in table
