"""A process killed in the middle of a write leaves nothing half-written (done for real, with SIGKILL)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from store_helpers import MODEL, SPEC_HASH, add_evaluated, find, plan_hash

from storage import Store

ROOT = Path(__file__).resolve().parents[2]

# Opens the store, then records a candidate and its evaluation; a hook on COMMIT reports what its own
# transaction has inserted and sleeps before the commit reaches the database, until it is killed.
WRITER = textwrap.dedent(
    """
    import sys, time
    from sqlalchemy import event, text
    from sqlalchemy.engine import Engine
    from storage import EvaluationRecord, Store

    url, plan = sys.argv[1], sys.argv[2]
    store = Store.open(url)

    @event.listens_for(Engine, "commit")
    def hang(connection):
        counts = [
            connection.execute(text(f"SELECT count(*) FROM edgediff_{table}")).scalar_one()
            for table in ("candidates", "evaluations")
        ]
        print("ready", *counts, flush=True)
        time.sleep(120)

    record = EvaluationRecord(
        model=sys.argv[3], spec_hash=sys.argv[4], plan_hash=plan, status="ok", num_images=10, device="cpu"
    )
    store.record_candidate_evaluation("s", plan_json="{}", plan_hash=plan, method="greedy", record=record)
    print("committed", flush=True)
    """
)


def test_a_write_killed_before_commit_leaves_nothing(store, store_url, study):
    add_evaluated(store, study, "before", fid=20.0)
    store.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, store_url, plan_hash("killed"), MODEL, SPEC_HASH],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        ready, _, _ = select.select([writer.stdout], [], [], 30)
        assert ready, "the writer did not reach COMMIT within 30 s"
        line = writer.stdout.readline()
        assert line.split() == ["ready", "2", "2"], writer.stderr.read() if not line else line
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL

    with Store.open(store_url) as reopened:
        assert [c.plan_hash for c in reopened.candidates(study)] == [plan_hash("before")]
        assert find(reopened, "killed") is None
        add_evaluated(reopened, study, "killed", fid=5.0)  # the store is not left locked
        assert [p.plan_hash for p in reopened.front(study)] == [plan_hash("killed")]
