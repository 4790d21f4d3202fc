"""End to end: the greedy baseline and Optuna on local Ray workers, on the shipped DiT and U-Net,
with a tiny budget; the stored results, the fronts, and resuming a search killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from evaluators.plan import Plan
from evaluators.spec import EvalSpec
from search.driver import SearchConfig, run_search
from search.errors import SearchError
from storage import FULL_METHOD, Store, pareto_front

SPEC = EvalSpec(num_images=6, num_inference_steps=6, batch_size=6)


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _config(tmp_path: Path, model: str, **kw) -> SearchConfig:
    base = dict(study=f"s-{model}", model=model, spec=SPEC, budget=3, workers=2,
                db_url=f"sqlite:///{tmp_path / 'store.db'}", cache_dir=str(tmp_path / "cache"),
                greedy={"n_calib": 2}, threads=1)
    base.update(kw)
    return SearchConfig(**base)


def _check_study(store: Store, result, config: SearchConfig) -> None:
    study = config.study
    full = store.full_model_point(study)
    assert full is not None and full.fid is not None
    for method in config.methods:
        cands = store.candidates(study, method=method)
        assert len(cands) == result.methods[method].done
        points = store.points(study, method=method)
        assert {p.plan_hash for p in points} == {c.plan_hash for c in cands}, method
        front = result.methods[method].front
        assert [p.plan_hash for p in front] == [p.plan_hash for p in pareto_front(points)]
        for p in points:  # nobody on the front is dominated by a point of the same method
            if p.plan_hash in {f.plan_hash for f in front}:
                assert not any(q.macs <= p.macs and q.fid <= p.fid and (q.macs, q.fid) != (p.macs, p.fid)
                               for q in points)
        assert result.methods[method].hypervolume >= 0.0
    # Optuna's trials live in the same database, each told the stored objectives of its plan
    if "optuna" in config.methods:
        trials = optuna.load_study(study_name=f"edgediff:{study}",
                                   storage=config.db_url).get_trials()
        assert len(trials) == config.budget
        by_hash = {p.plan_hash: p for p in store.points(study)}
        for trial in trials:
            assert trial.state == optuna.trial.TrialState.COMPLETE
            point = by_hash[trial.user_attrs["plan_hash"]] if "plan_hash" in trial.user_attrs else None
            if point is not None:
                assert trial.values == [pytest.approx(point.macs), pytest.approx(point.fid)]


def test_dit_both_methods(tmp_path: Path, ray_local) -> None:
    config = _config(tmp_path, "digits-dit", deltas=(0.0, 0.05, 0.3))
    result = run_search(config)
    assert result.stopped == "finished"
    with Store.open(config.db_url) as store:
        _check_study(store, result, config)
        greedy = {c.label: c for c in store.candidates(config.study, method="greedy")}
        assert set(greedy) == {"δ=0", "δ=0.05", "δ=0.3"}
        full = store.candidates(config.study, method=FULL_METHOD)[0]
        assert greedy["δ=0"].plan_hash == full.plan_hash  # δ = 0 is the uncompressed plan
        loose = Plan.from_json(greedy["δ=0.3"].plan_json)
        assert loose.notes["delta"] == 0.3
        assert any(m != "full" for row in loose.attention.methods for m in row)
    # resuming a finished search measures nothing again
    again = run_search(config)
    assert again.measured == 0 and again.stopped == "finished"
    assert {m: s.done for m, s in again.methods.items()} == {m: s.done for m, s in result.methods.items()}


def test_unet_both_methods(tmp_path: Path, ray_local) -> None:
    config = _config(tmp_path, "digits-unet", budget=4)
    result = run_search(config)
    with Store.open(config.db_url) as store:
        _check_study(store, result, config)
        labels = [c.label for c in store.candidates(config.study, method="greedy")]
        assert len(labels) == 4 and all("branch" in label for label in labels)
        for c in store.candidates(config.study, method="greedy"):
            assert Plan.from_json(c.plan_json).deepcache is not None


def test_time_limit_stops_and_resumes(tmp_path: Path, ray_local) -> None:
    config = _config(tmp_path, "digits-unet", methods=("optuna",), budget=3, time_limit_s=0.01)
    first = run_search(config)
    assert first.stopped == "time limit"
    rest = run_search(_config(tmp_path, "digits-unet", methods=("optuna",), budget=3))
    assert rest.stopped == "finished"
    with Store.open(config.db_url) as store:
        assert len(store.candidates(config.study, method="optuna")) == 3


def test_bad_input(tmp_path: Path, ray_local) -> None:
    with pytest.raises(SearchError, match="budget"):
        run_search(_config(tmp_path, "digits-unet", budget=0))
    with pytest.raises(SearchError, match="sampler"):
        run_search(_config(tmp_path, "digits-unet", sampler="grid"))
    run_search(_config(tmp_path, "digits-unet", methods=("greedy",), budget=1, study="taken"))
    with pytest.raises(SearchError, match="searches digits-unet"):
        run_search(_config(tmp_path, "digits-dit", methods=("greedy",), budget=1, study="taken"))


def _rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_cli_resume_after_kill(tmp_path: Path) -> None:
    """SIGKILL the search mid-run; the same command finishes it with nothing measured twice."""
    db = tmp_path / "store.db"
    cmd = [sys.executable, "-m", "edgediff", "search", "--model", "digits-unet", "--study", "k",
           "--method", "both", "--budget", "4", "--workers", "1", "--images", "6", "--steps", "6",
           "--db", f"sqlite:///{db}", "--cache-dir", str(tmp_path / "cache"),
           "--export", str(tmp_path / "best.json")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    measured: list[tuple] = []
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if db.exists():
            try:
                measured = _rows(db, "select id, plan_hash, finished_at from edgediff_evaluations")
            except sqlite3.OperationalError:
                continue
            if len(measured) >= 3:  # the full model and at least two candidates
                break
    assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _rows(db, "select id, plan_hash, finished_at from edgediff_evaluations")
    assert len(before) >= 3

    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = _rows(db, "select id, plan_hash, finished_at from edgediff_evaluations")
    assert set(before) <= set(after)  # what the killed run measured is kept, not measured again
    assert len({h for _, h, _ in after}) == len(after)
    trials = optuna.load_study(study_name="edgediff:k", storage=f"sqlite:///{db}").get_trials()
    assert len(trials) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    with Store.open(f"sqlite:///{db}") as store:
        assert len(store.candidates("k", method="greedy")) == 4
        hashes = {t.user_attrs["plan_hash"] for t in trials}  # two trials may propose one plan
        assert {c.plan_hash for c in store.candidates("k", method="optuna")} == hashes
    assert "front of greedy" in done.stdout and "hypervolume" in done.stdout
    assert Plan.load(tmp_path / "best.json").model.name == "digits-unet"
