"""End to end: the greedy baseline and Optuna on local Ray workers, on the shipped DiT and U-Net,
with a tiny budget; the stored results, the fronts, and resuming a search killed with SIGKILL."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import optuna
import pytest

from evaluators.plan import Plan
from evaluators.spec import EvalSpec
from search.driver import SearchConfig, run_search
from search.errors import SearchError
from storage import FULL_METHOD, Store, candidate_labels, hypervolume_2d, pareto_front
from storage.url import redact

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
    # the front reads the unrounded quality metric, the FID column a stored copy: equal to 0.1%
    assert result.reference_point == pytest.approx((full.macs, 2 * full.fid), rel=1e-3)
    assert store.get_study(study).method == "+".join(result.methods)
    for method in result.methods:
        cands = store.candidates(study, method=method)
        points = store.points(study, method=method)
        assert {p.plan_hash for p in points} == {c.plan_hash for c in cands}, method
        front = result.methods[method].front
        assert [p.plan_hash for p in front] == [p.plan_hash for p in pareto_front(points)]
        for p in front:  # nothing of the same method dominates a front point
            assert not any(q.macs <= p.macs and q.fid <= p.fid and (q.macs, q.fid) != (p.macs, p.fid)
                           for q in points)
        volume = hypervolume_2d(front, result.reference_point) / (full.macs * full.fid)
        assert result.methods[method].hypervolume == pytest.approx(volume, rel=1e-4)
    full_samples = store.samples(study, full.plan_hash)  # the driver stores the workers' sample images
    assert full_samples is not None and full_samples.count == min(16, config.spec.num_images)
    for candidate in store.candidates(study):
        samples = store.samples(study, candidate.plan_hash)
        assert samples is not None and samples.seeds == full_samples.seeds, candidate.label
    if "greedy" in result.methods:  # every proposal is recorded, two giving one plan as two labels
        labels = [x for c in store.candidates(study, method="greedy") for x in candidate_labels(c.label)]
        assert len(labels) == len(set(labels)) == result.methods["greedy"].done
    # Optuna's trials live in the same database, each told the stored objectives of its plan
    if "optuna" in result.methods:
        trials = optuna.load_study(study_name=f"edgediff:{study}",
                                   storage=config.db_url).get_trials()
        assert len(trials) == config.budget == result.methods["optuna"].done
        by_hash = {p.plan_hash: p for p in store.points(study)}
        assert {t.user_attrs["plan_hash"] for t in trials} == {
            c.plan_hash for c in store.candidates(study, method="optuna")}
        for trial in trials:
            assert trial.state == optuna.trial.TrialState.COMPLETE
            point = by_hash[trial.user_attrs["plan_hash"]]
            assert trial.values == [pytest.approx(point.macs), pytest.approx(point.quality)]


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
    assert list(result.methods) == ["deepcache-grid", "optuna"]  # the U-Net baseline, by its name
    with Store.open(config.db_url) as store:
        _check_study(store, result, config)
        assert store.candidates(config.study, method="greedy") == []
        labels = [c.label for c in store.candidates(config.study, method="deepcache-grid")]
        assert len(labels) == 4 and all("branch" in label for label in labels)
        for c in store.candidates(config.study, method="deepcache-grid"):
            assert Plan.from_json(c.plan_json).deepcache is not None


SLOW_SPEC = EvalSpec(num_images=32, num_inference_steps=10, batch_size=32)  # seconds per plan


@pytest.mark.slow  # 35-56 s each: the default run stays under CI's 15 minutes
def test_time_limit_stops_and_resumes(tmp_path: Path, ray_local) -> None:
    """The limit cancels what is running; the trials it cut short run again on resume."""
    warm = _config(tmp_path, "digits-dit", methods=("optuna",), budget=1, spec=SLOW_SPEC, workers=1)
    run_search(warm)  # the uncompressed run is cached: the next run starts evaluating at once
    cut = run_search(replace(warm, budget=3, time_limit_s=4.0))
    assert cut.stopped == "time limit"
    storage = warm.db_url
    states = [t.state for t in optuna.load_study(study_name=f"edgediff:{warm.study}",
                                                 storage=storage).get_trials()]
    assert optuna.trial.TrialState.RUNNING in states  # cancelled mid-evaluation
    assert states.count(optuna.trial.TrialState.COMPLETE) < 3
    rest = run_search(replace(warm, budget=3))
    assert rest.stopped == "finished"
    with Store.open(storage) as store:
        _check_study(store, rest, replace(warm, budget=3))


def test_bad_input_writes_nothing(tmp_path: Path, ray_local) -> None:
    with pytest.raises(SearchError, match="budget"):
        run_search(_config(tmp_path, "digits-unet", budget=0))
    with pytest.raises(SearchError, match="sampler"):
        run_search(_config(tmp_path, "digits-unet", sampler="grid"))
    with pytest.raises(SearchError, match="contains '/'"):
        run_search(_config(tmp_path, "digits-unet", study="runs/unet"))
    with pytest.raises(SearchError, match="GPU"):
        run_search(_config(tmp_path, "digits-unet", device="cuda"))
    with pytest.raises(SearchError, match="unknown model 'no-such-model': use one of digits-dit"):
        run_search(_config(tmp_path, "no-such-model"))  # before Ray starts or anything is written
    assert not (tmp_path / "store.db").exists()  # nothing was written
    with pytest.raises(SearchError, match="greedy applies to transformer models, but digits-unet "
                                          "is a unet: use --method deepcache-grid"):
        run_search(_config(tmp_path, "digits-unet", methods=("greedy",), budget=1, study="taken"))
    assert not (tmp_path / "store.db").exists()  # found after the reference run: nothing written
    run_search(_config(tmp_path, "digits-unet", methods=("baseline",), budget=1, study="taken"))
    with pytest.raises(SearchError, match="is of model digits-unet, not digits-dit"):
        run_search(_config(tmp_path, "digits-dit", methods=("greedy",), budget=1, study="taken"))
    with Store.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        assert [s.name for s in store.list_studies()] == ["taken"]


def _descends_from_us(pid: int) -> bool:
    """Whether `pid` is a descendant of this process (a worker of the Ray started here)."""
    for _ in range(6):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid == os.getpid():
            return True
        if pid <= 1:
            return False
    return False


def _running_task_pid() -> int | None:
    """A worker of this test's Ray running a search job now (its title is 'ray::run_job')."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::run_job") and _descends_from_us(int(entry.name)):
            return int(entry.name)
    return None


@pytest.mark.slow  # 35-56 s each: the default run stays under CI's 15 minutes
def test_worker_death_is_retried(tmp_path: Path, ray_local) -> None:
    """kill -9 of the worker running an evaluation: Ray runs it again, the search loses nothing."""
    config = _config(tmp_path, "digits-dit", methods=("optuna",), budget=3, workers=1,
                     spec=SLOW_SPEC)
    run_search(replace(config, budget=1))  # reference measured: what runs next are evaluations
    out: dict = {}
    search = threading.Thread(target=lambda: out.update(result=run_search(config)))
    search.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and search.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
        trials = optuna.load_study(study_name=f"edgediff:{config.study}",
                                   storage=config.db_url).get_trials()
        if not any(t.state == optuna.trial.TrialState.RUNNING for t in trials):
            continue  # no evaluation dispatched yet
        pid = _running_task_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            killed = pid
    search.join(timeout=300)
    assert killed is not None, "no evaluation was caught running"
    result = out["result"]
    assert result.failed == 0 and result.stopped == "finished"
    with Store.open(config.db_url) as store:
        _check_study(store, result, config)


def _rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.slow  # 35-56 s each: the default run stays under CI's 15 minutes
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

    done = subprocess.run([*cmd, "--json"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = _rows(db, "select id, plan_hash, finished_at from edgediff_evaluations")
    assert set(before) <= set(after)  # what the killed run measured is kept as it was
    # and nothing is measured twice: the second run measured exactly the rows it added
    assert json.loads(done.stdout)["result"]["measured"] == len(after) - len(before)
    trials = optuna.load_study(study_name="edgediff:k", storage=f"sqlite:///{db}").get_trials()
    assert len(trials) == 4  # none lost, none left running or waiting
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                optuna.trial.TrialState.FAIL)
    assert all(t.state in finished for t in trials), [t.state for t in trials]
    with Store.open(f"sqlite:///{db}") as store:
        assert len(store.candidates("k", method="deepcache-grid")) == 4
        hashes = {t.user_attrs["plan_hash"] for t in trials}  # two trials may propose one plan
        assert {c.plan_hash for c in store.candidates("k", method="optuna")} == hashes
    assert Plan.load(tmp_path / "best.json").model.name == "digits-unet"


@pytest.mark.slow  # 35-56 s each: the default run stays under CI's 15 minutes
def test_store_locked_mid_search_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    """Another process holds the SQLite file's write lock past the busy timeout: the search stops
    with one line, the store stays intact, and the same command finishes once the lock is gone."""
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}?timeout=1"  # a one-second busy timeout, so the test does not wait 30 s
    cmd = [sys.executable, "-m", "edgediff", "search", "--model", "digits-unet", "--study", "locked",
           "--method", "optuna", "--budget", "4", "--workers", "1", "--images", "6", "--steps", "6",
           "--db", url, "--cache-dir", str(tmp_path / "cache"), "--export", str(tmp_path / "best.json")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            if db.exists() and len(_rows(db, "select id from edgediff_evaluations")) >= 2:
                break  # the full model and one candidate are stored
        except sqlite3.OperationalError:
            continue
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    lock = sqlite3.connect(db, timeout=30, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        _, err = proc.communicate(timeout=240)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert proc.returncode == 2, err[-2000:]
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "stopped answering (database is locked)" in lines[0], err[-2000:]
    assert "run the same command again" in lines[0] and "Traceback" not in err
    assert _rows(db, "pragma integrity_check") == [("ok",)]
    before = _rows(db, "select id, plan_hash, stage, status, finished_at from edgediff_evaluations")

    done = subprocess.run([*cmd, "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = _rows(db, "select id, plan_hash, stage, status, finished_at from edgediff_evaluations")
    assert set(before) <= set(after)  # nothing recorded before the lock is lost or rewritten
    assert json.loads(done.stdout)["result"]["measured"] == len(after) - len(before)
    trials = optuna.load_study(study_name="edgediff:locked", storage=f"sqlite:///{db}").get_trials()
    assert len(trials) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


# ---- PostgreSQL stopped mid-search ---------------------------------------------------------------
# The session's PostgreSQL server (tests/conftest.py) is shared with every other PostgreSQL test, so
# the test that stops one mid-search gets its own: initdb and pg_ctl in a temporary folder, its unix
# socket there too, with the root conftest's helpers (binaries, running as `postgres` under root).


def _root_conftest(pytestconfig: pytest.Config):
    """tests/conftest.py as pytest loaded it (`import conftest` may give another folder's)."""
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    for plugin in pytestconfig.pluginmanager.get_plugins():
        if Path(getattr(plugin, "__file__", None) or "/").resolve() == path:
            return plugin
    raise LookupError(f"{path} is not loaded")


@dataclass
class _Server:
    """A private PostgreSQL server that the test can stop and start again on the same data."""

    url: str  # of the `edgediff` database, with a password (trust auth ignores it) to be redacted
    dsn: dict
    start: Callable[[], None]
    stop: Callable[[], None]

    def rows(self, sql: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(**self.dsn, connect_timeout=5) as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture
def stoppable_postgresql(pytestconfig: pytest.Config):
    import psycopg

    pg = _root_conftest(pytestconfig)
    root, data, sockets, pg_ctl, options = pg._new_cluster("edgediff-pg-stop-")

    def start() -> None:
        pg._run_as_server_user(pg_ctl, "-D", str(data), *options, "-w", "start")

    def stop() -> None:  # fast: clients are disconnected, open transactions rolled back
        pg._run_as_server_user(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")

    try:
        start()
        with psycopg.connect(host=str(sockets), user="postgres", dbname="postgres",
                             autocommit=True) as admin:
            admin.execute('CREATE DATABASE "edgediff"')
        yield _Server(url=f"postgresql+psycopg://postgres:s3cret@/edgediff?host={sockets}",
                      dsn=dict(host=str(sockets), user="postgres", dbname="edgediff"),
                      start=start, stop=stop)
    finally:
        pg._remove_cluster(root, data, pg_ctl)


@pytest.mark.slow  # 35-56 s each: the default run stays under CI's 15 minutes
def test_postgresql_stopped_mid_search_stops_cleanly_and_resumes(
        tmp_path: Path, stoppable_postgresql: _Server) -> None:
    """The PostgreSQL server is stopped (pg_ctl stop -m fast) while the search is inside a query:
    the search stops with one line naming the store, every row recorded before stays as it was,
    and the same command finishes the search once the server is back, measuring only what is
    missing."""
    import psycopg

    server = stoppable_postgresql
    evaluations = ("select id, plan_hash, stage, status, macs_per_image, fid, finished_at "
                   "from edgediff_evaluations order by id")
    cmd = [sys.executable, "-m", "edgediff", "search", "--model", "digits-unet", "--study", "pg",
           "--method", "optuna", "--budget", "3", "--workers", "1", "--images", "6", "--steps", "6",
           "--db", server.url, "--cache-dir", str(tmp_path / "cache"),
           "--export", str(tmp_path / "best.json")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []  # stderr, read as it comes: the progress lines, then the error
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            try:
                if len(server.rows(evaluations)) >= 2:
                    break  # the full model and one candidate are stored
            except psycopg.Error:  # no schema yet
                continue
        # Where the stop lands must not depend on how fast this machine measures a plan: an
        # exclusive lock on the evaluations holds the search at its next store query, and the
        # server is stopped while that query waits (the search cannot finish without one).
        with psycopg.connect(**server.dsn) as lock:
            lock.execute("LOCK TABLE edgediff_evaluations IN ACCESS EXCLUSIVE MODE")
            seen = lock.execute(evaluations).fetchall()
            assert proc.poll() is None and 2 <= len(seen) < 4, "".join(lines)[-2000:]
            waiting = "select count(*) from pg_locks where not granted"
            while time.monotonic() < deadline and proc.poll() is None:
                if lock.execute(waiting).fetchone()[0]:
                    break
                time.sleep(0.1)
            assert proc.poll() is None, "".join(lines)[-2000:]
            server.stop()  # fast: every session is ended, the search's waiting query too
            stopped_at = time.monotonic()
            with contextlib.suppress(psycopg.Error):
                lock.rollback()  # the server ended this session: nothing to roll back there
        proc.wait(timeout=240)
        waited = time.monotonic() - stopped_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
    err = "".join(lines)
    assert proc.returncode == 2, err[-2000:]
    assert "Traceback" not in err, err[-4000:]
    assert [line for line in lines if "error" in line] == [lines[-1]], err[-2000:]
    assert ":***@" in redact(server.url)
    prefix = f"edgediff search: error: the store {redact(server.url)} stopped answering ("
    assert lines[-1].startswith(prefix) and "s3cret" not in err, lines[-1]
    reason = lines[-1][len(prefix):].split("); the search stopped", 1)[0]
    assert "terminating connection" in reason or "server closed the connection" in reason, reason
    assert "run the same command again" in lines[-1]
    assert waited < 60, f"the search took {waited:.0f} s to notice the stopped server"

    server.start()
    before = server.rows(evaluations)
    assert before == seen  # nothing recorded before the stop is lost or rewritten
    done = subprocess.run([*cmd, "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = server.rows(evaluations)
    assert after[:len(before)] == before
    assert json.loads(done.stdout)["result"]["measured"] == len(after) - len(before)
    # nothing measured twice: one ok full-stage evaluation per candidate plan (the full model's too)
    assert [(stage, status) for _, _, stage, status, *_ in after] == [("full", "ok")] * len(after)
    hashes = [plan_hash for _, plan_hash, *_ in after]
    assert len(hashes) == len(set(hashes))
    assert {h for (h,) in server.rows("select plan_hash from edgediff_candidates")} == set(hashes)
    trials = optuna.load_study(study_name="edgediff:pg", storage=server.url).get_trials()
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_postgresql_stopped_inside_an_optuna_query_names_the_connection(
        tmp_path: Path, ray_local, stoppable_postgresql: _Server) -> None:
    """The server stops while Optuna reads its trials (the next proposal, after one candidate is
    stored): the search stops with the store's one-line error, whose reason is the connection's."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    server = stoppable_postgresql
    config = _config(tmp_path, "digits-unet", methods=("optuna",), budget=3, workers=1,
                     db_url=server.url)
    armed, stopped = [], []

    def report(line: str) -> None:
        if " | optuna 1/3 " in line:  # the first candidate is stored and told
            armed.append(line)

    def stop_inside_trials_query(conn, cursor, statement, *args) -> None:
        listing = statement.startswith("SELECT trials.trial_id") and "trials.study_id =" in statement
        if armed and not stopped and listing:  # Optuna's get_trials, the next proposal's count
            stopped.append(statement)
            server.stop()  # the query is sent to a server that is going away

    event.listen(Engine, "before_cursor_execute", stop_inside_trials_query)
    try:
        with pytest.raises(SearchError) as info:
            run_search(config, report=report)
    finally:
        event.remove(Engine, "before_cursor_execute", stop_inside_trials_query)
    message = str(info.value)
    if not stopped:
        pytest.fail("the server was not stopped inside an Optuna trials query")
    if not message.startswith(f"the store {redact(server.url)} stopped answering (") or \
            "run the same command again" not in message:
        pytest.fail(f"not the store's stop message: {message}")
    reason = message.split(" stopped answering (", 1)[1].split("); the search stopped", 1)[0]
    assert "invalid data" not in reason and "connection" in reason, reason
