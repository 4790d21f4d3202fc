"""Multi-fidelity rungs: which plans a rung promotes (asynchronous successive halving on the
non-dominated order of (MACs, the rung's metric)), the options' checks, and a search on the shipped
DiT whose plans climb rungs of 4 and 8 images."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from edgediff.cli import main
from evaluators.spec import EvalSpec
from search.driver import SearchConfig, run_search
from search.errors import SearchError
from search.rungs import Ladder, check_rungs, rung_stage
from storage import Store


def test_a_rung_promotes_the_best_share_as_results_arrive():
    ladder = Ladder((4, 8, 16), keep=0.5)
    ladder.add(0, "a", 100, 0.5)
    assert ladder.promote(0) == []  # floor(1 x 1/2) = 0: one result promotes nothing
    ladder.add(0, "b", 100, 0.3)  # as dear as a, better: a is dominated
    assert ladder.ranking(0) == ["b", "a"]
    assert ladder.promote(0) == ["b"]
    ladder.add(0, "c", 50, 0.9)  # cheaper than b, worse: both non-dominated, b's metric first
    assert ladder.ranking(0) == ["b", "c", "a"]
    assert ladder.promote(0) == []  # floor(3/2) = 1: b, already promoted
    ladder.add(0, "d", 40, 0.95)
    assert ladder.ranking(0) == ["b", "c", "d", "a"]
    assert ladder.promote(0) == ["c"]  # floor(4/2) = 2: c joins b; never twice
    assert ladder.promote(0) == [] and ladder.promoted[0] == {"b", "c"}
    ladder.add(1, "b", 100, 20.0)
    ladder.add(1, "c", 50, 30.0)
    assert ladder.promote(1) == ["b"]  # the rungs are separate


def test_keep_one_third():
    ladder = Ladder((2, 8), keep=1 / 3)
    for k, value in enumerate((0.3, 0.1, 0.2)):
        ladder.add(0, f"p{k}", 10, value)  # equal MACs: by the metric alone
    assert ladder.promote(0) == ["p1"]


@pytest.mark.parametrize("rungs, keep, message", [
    ((8,), 0.5, "at least two image counts"),
    ((8, 4, 16), 0.5, "rising image counts"),
    ((4, 8), 0.5, "ends at 8 but the study measures 16"),
    ((4, 16), 1.0, "--keep 1.0 is out of range"),
])
def test_bad_rungs_are_one_line(rungs, keep, message):
    with pytest.raises(SearchError, match=message):
        check_rungs(rungs, keep, EvalSpec(num_images=16))


def test_cli_refuses_rungs_that_do_not_end_at_images_and_writes_nothing(tmp_path, capsys):
    db = tmp_path / "store.db"
    code = main(["search", "--model", "digits-dit", "--images", "8", "--rungs", "4,6",
                 "--db", f"sqlite:///{db}", "-o", str(tmp_path / "best.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "end the rungs at --images, e.g. --rungs 2,8" in err[-1]
    assert not db.exists() and not (tmp_path / "best.json").exists()


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow  # Ray start-up, six first-rung and three full evaluations: ~30 s on 2 cores
def test_plans_climb_the_rungs_and_only_the_promoted_are_measured_in_full(tmp_path: Path, ray_local):
    spec = EvalSpec(num_images=8, num_inference_steps=4, batch_size=8)
    config = SearchConfig(study="mf", model="digits-dit", spec=spec, methods=("optuna",), budget=6,
                          workers=1, db_url=f"sqlite:///{tmp_path / 'store.db'}",
                          cache_dir=str(tmp_path / "cache"), threads=1, rungs=(4, 8), keep=0.5)
    result = run_search(config)
    with Store.open(config.db_url) as store:
        study = store.get_study("mf")
        proposed = {c.plan_hash for c in store.candidates("mf", method="optuna")}
        low = store.points("mf", stage=rung_stage(4))
        assert {p.plan_hash for p in low} == proposed  # every plan is measured at the first rung
        for p in low:
            found = store.find_evaluation(model="digits-dit", spec_hash=study.spec_hash,
                                          plan_hash=p.plan_hash, stage="rung-4")
            assert found.num_images == 4 and p.objective == "fidelity" and p.fid is None
        # replaying the first rung's results in the order they came gives the plans measured in full
        replay = Ladder((4, 8), keep=0.5)
        promoted: set[str] = set()
        for p in sorted(low, key=lambda p: p.evaluation_id):
            replay.add(0, p.plan_hash, p.macs, p.quality)
            promoted.update(replay.promote(0))
        full = {p.plan_hash for p in store.points("mf", method="optuna")}
        assert full == promoted and 0 < len(full) < len(proposed)
        [rho] = store.rung_correlations("mf")
        assert (rho.stage, rho.against, rho.plans) == ("rung-4", "full", len(full))
    trials = optuna.load_study(study_name="edgediff:mf", storage=config.db_url).get_trials()
    states = {t.user_attrs["plan_hash"]: t.state for t in trials}
    assert len(trials) == 6 == result.methods["optuna"].done
    assert all(states[h] == optuna.trial.TrialState.COMPLETE for h in full)
    assert all(s == optuna.trial.TrialState.PRUNED for h, s in states.items() if h not in full)
