"""One driver per study: a second `edgediff search` on a study whose lease is held is refused in
one line naming the holder, writes nothing and starts no Ray; two real searches started together
on one study end with one of them refused and one evaluation per plan."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from hostile_helpers import cli, one_line_error, row_counts
from sqlalchemy import create_engine, text, update

from storage import Store, new_holder
from storage.models import Lease


def test_a_held_study_refuses_a_second_search(capsys, seeded_url):
    with Store.open(seeded_url) as store:
        store.acquire_lease("s", new_holder())
        with store._writing() as session:  # as if a live search on another machine held it
            session.execute(update(Lease).values(host="gpu-node-7", pid=4242))
    before = row_counts(seeded_url)
    code, _, err = cli(capsys, "search", "--model", "digits-unet", "--db", seeded_url, "--study", "s",
                       "--budget", "1")
    one_line_error(code, err, "is being driven by another search (pid 4242 on gpu-node-7")
    assert row_counts(seeded_url) == before
    import ray

    assert not ray.is_initialized()


def _search(url: str, tmp_path, name: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "edgediff", "search", "--model", "digits-unet", "--study", "s2",
            "--db", url, "--method", "deepcache-grid", "--budget", "3", "--images", "4", "--steps", "4",
            "--threads", "1", "--cache-dir", str(tmp_path / "cache"), "--out",
            str(tmp_path / f"{name}.json"), "--json"]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow
def test_two_searches_on_one_study_one_is_refused_one_evaluation_per_plan(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    first = _search(url, tmp_path, "first")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait until the first search holds the lease
        assert first.poll() is None, first.communicate()[1]
        if (tmp_path / "store.db").exists():
            engine = create_engine(url)
            try:
                with engine.connect() as connection:
                    if connection.execute(text("SELECT COUNT(*) FROM edgediff_leases")).scalar_one():
                        break
            except Exception:  # noqa: BLE001 - the store is being created
                pass
            finally:
                engine.dispose()
        time.sleep(0.5)
    second = _search(url, tmp_path, "second")
    _, err = second.communicate(timeout=600)
    assert second.returncode == 2, err
    assert err.count("\n") == 1 and f"pid {first.pid} on" in err, err
    _, err = first.communicate(timeout=900)
    assert first.returncode == 0, err
    engine = create_engine(url)
    with engine.connect() as connection:
        per_plan = connection.execute(text(
            "SELECT plan_hash, stage, COUNT(*) FROM edgediff_evaluations GROUP BY plan_hash, stage"
        )).all()
        leases = connection.execute(text("SELECT COUNT(*) FROM edgediff_leases")).scalar_one()
    engine.dispose()
    assert per_plan and all(count == 1 for _, _, count in per_plan)
    assert leases == 0  # given back at the end
