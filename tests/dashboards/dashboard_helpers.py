"""Helpers of the dashboard tests: the dashboard served in a thread, a writable copy of a store,
and a plan recorded while the dashboard is open."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from evaluators.plan import Plan


@dataclass(frozen=True)
class Served:
    base: str  # http://127.0.0.1:PORT

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of a GET, error statuses included."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def json(self, path: str) -> tuple[int, dict]:
        status, _, body = self.get(path)
        return status, json.loads(body)


def serve_in_thread(url: str, refresh_s: float = 1.0) -> Iterator[Served]:
    """The dashboard over the store at `url`, as `edgediff dashboard` serves it, on a free port."""
    import uvicorn

    from dashboards.app import create_app
    from dashboards.server import bind
    from storage import Store

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(Store.open(url, create=False), refresh_s=refresh_s),
                                          log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the dashboard did not start"
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def copy_store(url: str, folder: Path) -> str:
    """A copy of a SQLite store, for a test that writes to it."""
    import sqlite3

    target = folder / "copy.db"
    with sqlite3.connect(url.removeprefix("sqlite:///")) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    return f"sqlite:///{target}"


def add_manual_point(url: str, study: str) -> str:
    """Record one more plan of `study` (method "manual": the uncompressed plan at fewer steps, with
    made-up measurements), as a search would while the dashboard is open; its plan hash."""
    from dataclasses import replace

    from storage import EvaluationRecord, Store

    with Store.open(url) as store:
        info = store.get_study(study)
        full = store.full_model_point(study)
        plan = Plan.from_json(store.plan_json(study, full.plan_hash))
        plan = replace(plan, sampling=replace(plan.sampling, num_inference_steps=plan.num_steps - 1))
        record = EvaluationRecord(model=info.model, spec_hash=info.spec_hash, plan_hash=plan.content_hash(),
                                  status="ok", num_images=8, device="cpu", macs_per_image=full.macs // 2,
                                  fid=full.fid * 1.1, latency_per_image_s=0.01)
        store.record_candidate_evaluation(study, plan_json=plan.to_json(), plan_hash=plan.content_hash(),
                                          method="manual", label="hand-made", record=record)
    return plan.content_hash()
