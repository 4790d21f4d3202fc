"""Search service benchmark: throughput, orchestration overhead, and store queries at scale.

Three parts (`--parts`, all by default), each printing a table:

1. throughput: `run_search` (what `edgediff search` runs) with the real evaluator, Optuna alone,
   `--budget` evaluations on a fresh store, once with 1 Ray worker (every CPU thread) and once with
   2 (half the threads each): evaluations per minute of the search loop (the uncompressed model's
   run, made once per search, excluded).
2. overhead: the same driver with a trivial evaluator: a worker parses the plan and returns the
   uncompressed model's evaluation relabelled with the plan's hash and made-up MACs and FID (no
   generation, no scoring; the record, sample sheet included, is as large as a real one). What is
   left is the service's own cost per evaluation: the strategy's ask and tell (Optuna's trials in
   the same database), the dispatch (a stored-result lookup and the Ray submit), the wait for the
   Ray task, the store write and the progress line (which reads the fronts back). With part 1 in
   the same run, the overhead is also given as a share of a real evaluation's time.
3. queries: a store holding `--rows` evaluations of distinct plans of the embedded DiT's search
   space (one study; ok evaluations with MACs/FID on a front-shaped cloud, 2% failed), written
   through `Store.record_candidate_evaluation` like a search writes them (sample sheets left out:
   only the dashboard's plan view shows them); then the median time of: every point, the Pareto
   front (all methods, one method), the plan an export picks (`best`, FID within +5) and the
   export itself, the `edgediff front` / `edgediff export` commands end to end (a new process
   each), and the requests a browser makes to `edgediff dashboard` over the same store (a zoom
   on the front plot included). The store is kept (`edgediff-out/bench-queries.db`, or `--db`)
   and reused by the next run. `--backends sqlite postgresql` times both back ends in one run:
   the PostgreSQL store is the SQLite one copied, row for row, into a throwaway server started
   from Debian's binaries (`bench/pg_server.py`).

    .venv/bin/python bench/service.py                                 # all three, both models
    .venv/bin/python bench/service.py --parts overhead --overhead-budget 50
    .venv/bin/python bench/service.py --parts queries --rows 100000 --db postgresql://me@/bench
    .venv/bin/python bench/service.py --parts queries --backends sqlite postgresql   # one run, both
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pg_server
from bench_tables import markdown_table
from pg_server import process_cpu

from evaluators.spec import EvalSpec
from search import driver as search_driver
from search.driver import SearchConfig, run_search
from search.strategies.optuna_search import OptunaStrategy
from storage import FULL_METHOD, EvaluationRecord, Store

MODELS = ("digits-dit", "digits-unet")
EXPORT_FID_WITHIN = 5.0
QUERY_STORE = "edgediff-out/bench-queries.db"  # kept between runs: writing it takes minutes
QUERY_STUDY = "bench-queries"


# --- tables --------------------------------------------------------------------------------------

def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def optuna_config(out: Path, name: str, model: str, spec: EvalSpec, budget: int, workers: int,
                  threads: int) -> SearchConfig:
    """An Optuna-only search on a fresh SQLite store in `out`; every run shares one reference cache."""
    return SearchConfig(study=name, model=model, spec=spec, methods=("optuna",),
                        budget=budget, workers=workers, threads=threads,
                        db_url=f"sqlite:///{out / (name + '.db')}", cache_dir=str(out / "cache"))


# --- 1. throughput with the real evaluator -------------------------------------------------------

def throughput(out: Path, model: str, spec: EvalSpec, budget: int) -> list[dict[str, Any]]:
    """Optuna alone, `budget` evaluations, with 1 and 2 workers on fresh stores."""
    cores = os.cpu_count() or 1
    runs = []
    for workers in (1, 2):
        config = optuna_config(out, f"{model}-throughput-{workers}w", model, spec, budget, workers,
                               threads=max(1, cores // workers))
        say(f"throughput: {model}, {workers} worker(s), {budget} evaluations")
        result = run_search(config, report=lambda line: say("  " + line))
        runs.append(dict(model=model, workers=workers, threads=max(1, cores // workers),
                         measured=result.measured, loop_s=result.loop_seconds,
                         per_eval_s=result.loop_seconds / max(1, result.measured)))
    return runs


# --- 2. overhead with a trivial evaluator --------------------------------------------------------

def trivial_job(job: Any, reference: Any = None) -> Any:
    """A worker's job without the work: the reference job runs for real (once per search); an
    evaluation returns the uncompressed model's measurement under the plan's hash, with MACs and
    FID made up from the hash (the same plan always reads the same)."""
    import socket

    from search.tasks import MeasuredPlan, run_job

    if job.kind != "evaluate":
        return run_job(job, reference)
    began = time.perf_counter()
    plan_hash = job.plan.content_hash()
    draw = random.Random(plan_hash)
    full = reference.measurement
    share = draw.uniform(0.1, 1.0)
    now = datetime.now(timezone.utc)
    measurement = replace(full, plan_hash=plan_hash, macs_per_image=int(full.macs_per_image * share),
                          macs_per_generation=int(full.macs_per_generation * share),
                          fid=full.fid * (1.0 + 0.2 / share * draw.random()), seconds=0.0,
                          started_at=now, finished_at=now)
    return MeasuredPlan(f"{socket.gethostname()}:{os.getpid()}", (measurement,),
                        seconds=time.perf_counter() - began)


def trivial_runner(num_cpus: float, num_gpus: float, max_retries: int) -> Any:
    """`search.tasks.remote_runner` with the trivial job (defined in this script, so Ray ships the
    function itself to the workers)."""
    import ray

    return ray.remote(trivial_job).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                           max_retries=max_retries, retry_exceptions=False)


class Timers:
    """Seconds spent in wrapped driver methods, per label (patched for one run, then restored).

    Exclusive times: a wrapped call inside another (a reused plan's `tell` inside `_dispatch`)
    counts for its own label only. Calls are counted only inside the `scope` method (the loop),
    whose total is its whole time.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._inner: list[float] = []  # per open wrapped call: time spent in wrapped calls within
        self._scope = 0
        self.finished: dict[str, list[float]] = defaultdict(list)  # when each call returned
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, name: str, label: str, *, scope: bool = False) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._scope += scope
            self._inner.append(0.0)
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - began
                inner = self._inner.pop()
                if self._inner:
                    self._inner[-1] += elapsed
                if self._scope:
                    self.seconds[label] += elapsed if scope else elapsed - inner
                    self.finished[label].append(began + elapsed)
                self._scope -= scope

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def replace(self, owner: Any, name: str, value: Any) -> None:
        original = getattr(owner, name)
        setattr(owner, name, value)
        self._undo.append(lambda: setattr(owner, name, original))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()


OVERHEAD_PARTS = ("ask", "dispatch", "result", "store write", "tell", "progress line")


def overhead(out: Path, model: str, spec: EvalSpec, budget: int) -> list[dict[str, Any]]:
    """Optuna alone with the trivial evaluator, 1 and 2 workers of 1 thread each."""
    runs = []
    for workers in (1, 2):
        config = optuna_config(out, f"{model}-overhead-{workers}w", model, spec, budget, workers,
                               threads=1)
        timers = Timers()
        timers.replace(search_driver, "remote_runner", trivial_runner)
        timers.wrap(OptunaStrategy, "ask", "ask")
        timers.wrap(OptunaStrategy, "tell", "tell")
        timers.wrap(search_driver._Search, "_dispatch", "dispatch")
        timers.wrap(search_driver._Search, "_handle", "result")
        timers.wrap(search_driver._Search, "_record", "store write")
        timers.wrap(search_driver._Search, "status", "progress line")
        timers.wrap(search_driver._Search, "run", "loop", scope=True)  # the search loop only
        say(f"overhead: {model}, {workers} worker(s), {budget} trivial evaluations")
        try:
            result = run_search(config, report=lambda line: None)
        finally:
            timers.restore()
        measured = max(1, result.measured)
        parts = {label: timers.seconds[label] / measured for label in OVERHEAD_PARTS}
        per_eval = timers.seconds["loop"] / measured
        done = timers.finished["result"]  # one per measured plan (reused plans are told at once)
        half = len(done) // 2
        steady = (done[-1] - done[half - 1]) / (len(done) - half) if half else per_eval
        runs.append(dict(model=model, workers=workers, measured=result.measured,
                         per_eval_s=per_eval, steady_s=steady, parts=parts,
                         waited_s=per_eval - sum(parts.values())))
    return runs


# --- 3. queries on a large store -----------------------------------------------------------------

def dit_plans(count: int, seed: int) -> Iterator[tuple[str, str]]:
    """(plan JSON, plan hash) of `count` distinct random plans of the embedded DiT's search space."""
    from evaluators.evaluate import Evaluator
    from search.space import make_space, model_facts

    evaluator = Evaluator("digits-dit", EvalSpec(num_images=8, num_inference_steps=50))
    space = make_space(model_facts(evaluator.denoiser), evaluator.full_plan)
    yield evaluator.full_plan.to_json(), evaluator.full_plan.content_hash()
    choices = space.choices()
    draw = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < count - 1:
        plan = space.build({name: draw.choice(options) for name, options in choices.items()})
        plan_hash = plan.content_hash()
        if plan_hash not in seen:
            seen.add(plan_hash)
            yield plan.to_json(), plan_hash


def build_store(url: str, study: str, rows: int, seed: int = 0) -> float:
    """Write `rows` evaluations (the first the full model's) as a search would; seconds taken."""
    from tqdm import tqdm

    spec_hash = "f" * 64
    draw = random.Random(seed)
    full_macs, full_fid = 8.2e9, 30.0
    began = time.perf_counter()
    with Store.open(url) as store:
        store.create_study(study, model="digits-dit", spec_json=EvalSpec().to_json(),
                           spec_hash=spec_hash, model_fingerprint="bench", method="greedy+optuna")
        start = datetime.now(timezone.utc)
        plans = dit_plans(rows, seed)
        for index, (plan_json, plan_hash) in enumerate(tqdm(plans, total=rows, desc="writing",
                                                            unit="evaluation", file=sys.stderr)):
            if index == 0:
                method, share, fid = FULL_METHOD, 1.0, full_fid
            else:
                method = "greedy" if draw.random() < 0.1 else "optuna"
                share = draw.uniform(0.15, 1.0)
                fid = full_fid * (1.0 + 0.05 / share * draw.lognormvariate(0.0, 0.5)) - 1.5
            failed = index > 0 and draw.random() < 0.02
            when = start + timedelta(seconds=index)
            record = EvaluationRecord(
                model="digits-dit", spec_hash=spec_hash, plan_hash=plan_hash,
                status="failed" if failed else "ok", num_images=200, device="cpu",
                error="the plan produced NaN or infinite pixels" if failed else None,
                macs_per_image=None if failed else int(full_macs * share),
                macs_per_generation=None if failed else int(full_macs * share * 100),
                latency_per_image_s=None if failed else 0.2 * share,
                fid=None if failed else fid, mse=None if failed else 0.01 / share,
                psnr=None if failed else 20.0 + 10 * share, similarity=None if failed else 0.1,
                class_accuracy=None if failed else 0.9, started_at=when,
                finished_at=when + timedelta(seconds=30), seconds=30.0, worker="bench:0")
            store.record_candidate_evaluation(study, plan_json=plan_json, plan_hash=plan_hash,
                                              method=method, label=None, record=record)
    return time.perf_counter() - began


# CPU time, beside the wall time: on a machine that other work shares, wall times grow with the
# load while the CPU seconds a request costs do not. Counted: this process, its finished children
# (the CLI commands), and the processes in WATCHED (the dashboard server; the PostgreSQL server,
# whose connections' backends it reaps).
WATCHED: list[Callable[[], float]] = []
def cpu_now() -> float:
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime + sum(f() for f in WATCHED)


def timed(run: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Median wall seconds and median CPU seconds of `repeats` calls after one untimed call, and
    the last result."""
    result = run()
    walls, cpus = [], []
    for _ in range(repeats):
        began, cpu = time.perf_counter(), cpu_now()
        result = run()
        walls.append(time.perf_counter() - began)
        cpus.append(cpu_now() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def queries(out: Path, url: str, rows: int, repeats: int) -> tuple[float | None, list[list[Any]]]:
    """Seconds to write the store (None: it was there already) and the query timings."""
    study = QUERY_STUDY
    write_s = None
    with Store.open(url) as store:
        existing = store.find_study(study)
    if existing is None:
        write_s = build_store(url, study, rows)
    else:
        say(f"queries: reusing study '{study}' in {url} (delete it to write it again)")
    table_rows: list[list[Any]] = []
    cli = [str(Path(sys.executable).with_name("edgediff"))]
    with Store.open(url, create=False) as store:
        def add(what: str, run: Callable[[], Any], describe: Callable[[Any], str]) -> None:
            seconds, cpu, result = timed(run, repeats)
            table_rows.append([what, f"{seconds * 1000:.0f}", f"{cpu * 1000:.0f}", describe(result)])

        add("every point (`Store.points`)", lambda: store.points(study),
            lambda r: f"{len(r)} points")
        add("every plan's MACs and FID (`Store.objectives`)", lambda: store.objectives(study),
            lambda r: f"{len(r)} rows")
        add("Pareto front (`Store.front`)", lambda: store.front(study),
            lambda r: f"{len(r)} plans on the front")
        add("one method's front (`front(method='optuna')`)",
            lambda: store.front(study, method="optuna"), lambda r: f"{len(r)} plans")
        add(f"plan an export picks (`best(fid_within={EXPORT_FID_WITHIN:g})`)",
            lambda: store.best(study, fid_within=EXPORT_FID_WITHIN),
            lambda r: f"{r.macs / 1e9:.2f} GMACs, FID {r.fid:.2f}")
        point = store.best(study, fid_within=EXPORT_FID_WITHIN)
        target = out / "exported-plan.json"
        add("export that plan (`export_plan`: plan JSON written, export row)",
            lambda: store.export_plan(study, point, target, f"fid_within={EXPORT_FID_WITHIN:g}"),
            lambda r: f"{target.stat().st_size} bytes")

    def command(args: list[str]) -> Callable[[], Any]:
        return lambda: subprocess.run(cli + args + ["--db", url], check=True,
                                      capture_output=True, text=True)

    add_cli = [
        (f"`edgediff front {study}` (new process)", command(["front", study])),
        (f"`edgediff export {study} --fid-within {EXPORT_FID_WITHIN:g}` (new process)",
         command(["export", study, "--fid-within", str(EXPORT_FID_WITHIN),
                  "-o", str(out / "cli-export.json")])),
        ("`edgediff --help` (new process: start-up alone)", lambda: subprocess.run(
            cli + ["--help"], check=True, capture_output=True)),
    ]
    for what, run in add_cli:
        seconds, cpu, _ = timed(run, max(1, repeats // 2))
        table_rows.append([what, f"{seconds * 1000:.0f}", f"{cpu * 1000:.0f}", ""])
    table_rows += dashboard_requests(cli, url, study, point.plan_hash, max(1, repeats // 2))
    return write_s, table_rows


def dashboard_requests(cli: list[str], url: str, study: str, plan_hash: str,
                       repeats: int) -> list[list[Any]]:
    """Median time of each dashboard request a user's browser makes, against a real
    `edgediff dashboard` process over the same store (page and JSON, with the bytes sent)."""
    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(cli + ["dashboard", "--db", url, "--port", str(port), "--refresh", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    WATCHED.append(functools.partial(process_cpu, server.pid))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/api/studies", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"edgediff dashboard did not answer on {base}") from None
                time.sleep(0.5)
        short = plan_hash[:12]
        requests = [
            ("dashboard: study list page", "/"),
            ("dashboard: study page (fronts, hypervolume curves, thinned points)", f"/studies/{study}"),
            ("dashboard: its redraw (`/figures`, after an evaluation lands)",
             f"/api/studies/{study}/figures"),
            ("dashboard: its poll when nothing changed (`/figures?since=`)", None),
            ("dashboard: `/api/studies/{study}/front`", f"/api/studies/{study}/front"),
            ("dashboard: a zoom (`/figures/front?macs=1,3&fid=30,40`)",
             f"/api/studies/{study}/figures/front?macs=1,3&fid=30,40"),
            ("dashboard: a plan opened by a click", f"/studies/{study}/plans/{short}/fragment"),
            ("dashboard: `/api/studies/{study}/plans/{plan}`", f"/api/studies/{study}/plans/{short}"),
            ("dashboard: plan download", f"/api/studies/{study}/plans/{short}/plan.json"),
        ]
        version = json.loads(urllib.request.urlopen(f"{base}/api/studies/{study}/figures?since=-",
                                                    timeout=600).read())["version"]
        table = []
        for what, path in requests:
            path = path or f"/api/studies/{study}/figures?since={version}"
            fetch = functools.partial(lambda p: urllib.request.urlopen(base + p, timeout=600).read(), path)
            seconds, cpu, body = timed(fetch, repeats)
            table.append([what, f"{seconds * 1000:.0f}", f"{cpu * 1000:.0f}", f"{len(body) / 1e6:.2f} MB"])
        return table
    finally:
        WATCHED.pop()
        server.terminate()
        server.wait(timeout=30)


def report_queries(out: Path, url: str, rows: int, repeats: int, note: str = "") -> None:
    """Part 3 on the store at `url` (written first if it lacks the study), printed as a table."""
    write_s, table = queries(out, url, rows, repeats)
    with Store.open(url, create=False) as store:
        held = len(store.progress(QUERY_STUDY))
    written = ("" if write_s is None else
               f"; written in {write_s:.0f} s, {held / write_s:.0f} evaluations/s")
    backend = url.split(":", 1)[0].split("+", 1)[0]
    print(f"\n3. queries on a store of {held} evaluations ({backend}{written}{'; ' + note if note else ''}; "
          f"median of {repeats})\n")
    print(markdown_table(["query", "ms", "CPU ms", "result"], table))


# --- main ----------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["throughput", "overhead", "queries"],
                        choices=["throughput", "overhead", "queries"])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--budget", type=int, default=4, help="real evaluations per throughput run")
    parser.add_argument("--images", type=int, default=100, help="images per real evaluation")
    parser.add_argument("--steps", type=int, default=50, help="steps of the uncompressed model")
    parser.add_argument("--overhead-budget", type=int, default=100,
                        help="trivial evaluations per overhead run")
    parser.add_argument("--rows", type=int, default=100_000, help="evaluations in the query store")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per query")
    parser.add_argument("--db", help=f"database of the query store (default: {QUERY_STORE}; "
                        "with --db, only that one)")
    parser.add_argument("--backends", nargs="+", default=["sqlite"], choices=["sqlite", "postgresql"],
                        help="query stores to time: postgresql starts a throwaway server from "
                             "Debian's binaries and copies the SQLite store into it")
    parser.add_argument("--out", default="edgediff-out/bench-service")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still stops the servers it started
    out = Path(args.out).absolute()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    spec = replace(EvalSpec(), num_images=args.images, num_inference_steps=args.steps)
    print(f"{os.cpu_count()} CPUs; {args.images} images at {args.steps} steps per real evaluation")

    real: dict[str, float] = {}
    if "throughput" in args.parts:
        rows = []
        for model in args.models:
            for run in throughput(out, model, spec, args.budget):
                rows.append([model, run["workers"], run["threads"], run["measured"],
                             f"{run['loop_s']:.1f}", f"{run['per_eval_s']:.2f}",
                             f"{60 / run['per_eval_s']:.2f}"])
                if run["workers"] == 1:
                    real[model] = run["per_eval_s"]
        print("\n1. throughput: Optuna alone, real evaluations (uncompressed model's run excluded)\n")
        print(markdown_table(["model", "workers", "threads each", "evaluations", "loop s",
                     "s per evaluation", "evaluations per minute"], rows))

    if "overhead" in args.parts:
        rows = []
        for model in args.models:
            for run in overhead(out, model, spec, args.overhead_budget):
                parts = [f"{run['parts'][p] * 1000:.1f}" for p in OVERHEAD_PARTS]
                share = (f"{run['per_eval_s'] / real[model] * 100:.2f}%" if model in real else "")
                rows.append([model, run["workers"], run["measured"], f"{60 / run['per_eval_s']:.0f}",
                             f"{60 / run['steady_s']:.0f}", f"{run['per_eval_s'] * 1000:.1f}",
                             *parts, f"{run['waited_s'] * 1000:.1f}", share])
        print("\n2. orchestration overhead per evaluation with a trivial evaluator (ms per "
              "evaluation; the rates are per minute)\n")
        print(markdown_table(["model", "workers", "evaluations", "rate", "rate, second half", "total",
                     *OVERHEAD_PARTS, "waiting on Ray", "total / real evaluation"], rows))

    if "queries" in args.parts:
        if args.db:
            report_queries(out, args.db, args.rows, args.repeats)
        sqlite_url = f"sqlite:///{Path(QUERY_STORE).absolute()}"
        for backend in [] if args.db else args.backends:
            if backend == "sqlite":
                report_queries(out, sqlite_url, args.rows, args.repeats)
                continue
            with Store.open(sqlite_url) as store:
                missing = store.find_study(QUERY_STUDY) is None
            if missing:  # the PostgreSQL store is a copy of the SQLite one: write that first
                build_store(sqlite_url, QUERY_STUDY, args.rows)
            with pg_server.throwaway_server() as (pg_url, server_cpu):
                WATCHED.append(server_cpu)
                began = time.perf_counter()
                copied = pg_server.copy_store(sqlite_url, pg_url)
                note = (f"a throwaway server, the SQLite store copied in: {copied} rows in "
                        f"{time.perf_counter() - began:.0f} s")
                report_queries(out, pg_url, args.rows, args.repeats, note)
                WATCHED.remove(server_cpu)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
