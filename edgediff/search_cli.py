"""`edgediff search`: parse, run the search, print the fronts, export the best plan."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgediff.checks import preflight
from edgediff.errors import CliError
from edgediff.runtime_options import LATENCY_REPEATS
from edgediff.study_cli import (
    POINT_RIGHT,
    correlation_table,
    given_spec,
    point_headers,
    point_rows,
    speedup_line,
    speedups,
    study_name_of,
    study_spec,
)
from edgediff.tables import dumps, number, table
from storage import HV_FID_FACTOR

BOTH = "both"  # the model family's baseline and Optuna


def add_method_option(parser: argparse.ArgumentParser) -> None:
    """`--method`: a registered search method (`search.methods`), "baseline" or "both"."""
    from search.methods import BASELINE, search_methods

    methods = search_methods()
    lines = [f"{m.name}: {m.help}" for m in methods]
    lines += [f"{BASELINE}: the model family's baseline", f"{BOTH}: {BASELINE} and optuna (default)"]
    parser.add_argument("--method", choices=[m.name for m in methods] + [BASELINE, BOTH],
                        default=BOTH, help="; ".join(lines))


def add_rung_options(parser: argparse.ArgumentParser) -> None:
    """`--rungs` and `--keep`: a multi-fidelity search (`search.rungs`)."""
    parser.add_argument("--rungs", type=_rungs, default=(),
                        help="multi-fidelity: image counts of the rungs, rising, the last = --images "
                             "(e.g. 8,32,64): the first scores paired fidelity, the others the study's "
                             "metric; only the best --keep share of a rung goes on")
    parser.add_argument("--keep", type=_share, default=0.5,
                        help="share of a rung's plans that go on to the next (0.5 or 1/3; default 1/2)")


def _rungs(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of image counts: give e.g. "
                                         "8,32,64") from None
    return counts


def _share(text: str) -> float:
    top, _, bottom = text.partition("/")
    try:
        value = float(top) / float(bottom) if bottom else float(top)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"'{text}' is not a share: give e.g. 0.5 or 1/3") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is out of range: give a share between 0 and 1, "
                                         "e.g. 0.5 or 1/3")
    return value


def _methods(choice: str) -> tuple[str, ...]:
    from search.methods import BASELINE

    return (BASELINE, "optuna") if choice == BOTH else (choice,)


class _Progress:
    """One live line on a terminal (rewritten in place), plain lines elsewhere."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.live = enabled and sys.stderr.isatty()
        self.width = 0
        self.last = ""

    def __call__(self, line: str) -> None:
        if not self.enabled:
            return
        news = line.split(" | ", 1)[-1]  # the part after the clock
        if not self.live and news == self.last:
            return  # in a log file, a line only when something changed
        self.last = news
        if self.live:
            pad = max(0, self.width - len(line))
            sys.stderr.write("\r" + line + " " * pad)
            self.width = len(line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.live and self.width:
            sys.stderr.write("\n")
            self.width = 0


def cmd_search(args: argparse.Namespace) -> int:
    from evaluators.subjects import check_drivable
    from search.driver import SearchConfig, run_search
    from search.lease import check_free
    from storage import Store, find_existing_study

    preflight(args, remote_workers=args.address is not None)  # before Ray starts or the store opens
    check_drivable(args.model)  # a family no subject drives (Qwen-Image, Wan): before Ray starts
    study_name = study_name_of(args)  # before any model is loaded or image generated
    out = Path(args.out or Path("edgediff-out") / f"{_slug(study_name)}-best.json")
    existing = find_existing_study(args.db, study_name)  # an unreachable store fails here
    objective = search_objective(existing, args)
    given = given_spec(args)
    if existing is None and objective == "latency":
        given.setdefault("latency_repeats", LATENCY_REPEATS)
    spec = study_spec(existing, study_name, args.model, given)
    if args.gpus_per_worker and not args.device.startswith("cuda"):
        raise CliError(f"--gpus-per-worker {args.gpus_per_worker:g} needs --device cuda; on the "
                       "CPU leave it out (0)")
    check_free(args.db, study_name)  # another search on this study: refused before any output
    greedy = {k: v for k, v in (("n_calib", args.calib_samples), ("seed", args.calib_seed),
                                ("window", args.window)) if v is not None}
    config = SearchConfig(
        study=study_name, model=args.model, spec=spec, methods=_methods(args.method),
        budget=args.budget, workers=args.workers, time_limit_s=args.time_limit,
        address=args.address, db_url=args.db, sampler=args.sampler, seed=args.sampler_seed,
        device=args.device, threads=args.threads, cache_dir=args.cache_dir,
        deltas=tuple(args.deltas) if args.deltas else None, greedy=greedy,
        objective=objective, gpus_per_worker=args.gpus_per_worker,
        rungs=args.rungs, keep=args.keep,
    )
    progress = _Progress(not args.json)
    progress(f"search '{study_name}': {args.model}, {' + '.join(config.methods)}, budget "
             f"{config.budget} per method, {config.workers} worker(s)")
    try:
        result = run_search(config, report=progress)
    except KeyboardInterrupt:
        progress.close()
        print(f"search '{study_name}' stopped: what finished is stored; run the same command to "
              "continue", file=sys.stderr)
        raise
    finally:
        progress.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    with Store.open(args.db, create=False) as store:
        point = store.best(study_name, fid_within=args.fid_within)
        export = store.export_plan(study_name, point, out, f"fid <= full model + {args.fid_within:g}")
        correlations = store.rung_correlations(study_name) if config.rungs else []
    speedup = speedups(point, result.full)
    if args.json:
        print(dumps({"result": result, "export": export, "point": point, "speedup": speedup,
                     "rung_correlations": correlations}))
        return 0
    _print_result(result)
    if correlations:
        print("\nhow well each rung ranked the plans it promoted (Spearman's rho):")
        print(correlation_table(correlations))
    print(f"best plan with FID within +{args.fid_within:g} of the full model: "
          f"{point.plan_hash[:12]} ({', '.join(point.methods)}) exported to {export.path}; "
          + speedup_line(speedup))
    return 0


def search_objective(existing: Any, args: argparse.Namespace) -> str:
    """--objective, or the existing study's own; CliError where they differ."""
    from storage import study_cost

    if existing is None:
        return args.objective or "macs"
    stored = study_cost(existing.objectives)
    if args.objective is not None and args.objective != stored:
        raise CliError(f"study '{existing.name}' minimises {stored}, not {args.objective}: leave "
                       "--objective out to resume it, or pass another --study name")
    return stored


def _print_result(result: Any) -> None:
    full = result.full
    for method, summary in result.methods.items():
        print(f"\nfront of {method} ({len(summary.front)} plans, {summary.done} evaluated):")
        if summary.front:
            print(table(point_headers(summary.front), point_rows(summary.front, full), POINT_RIGHT))
    if full is not None and result.reference_point is not None:
        cost = "MACs" if result.objective == "macs" else "measured latency"
        print(f"\nhypervolume against the reference point (full model's {cost}, {HV_FID_FACTOR:g} x "
              f"its FID = {result.reference_point[1]:.3f}), in units of the full model:")
        rows = [[m, s.done, len(s.front), number(s.hypervolume, 4)] for m, s in result.methods.items()]
        print(table(["method", "evaluated", "front", "hypervolume"], rows, [False, True, True, True]))
    state = "finished" if result.stopped == "finished" else "stopped at the time limit (rerun to continue)"
    print(f"\n{state}: {result.measured} evaluations measured, {result.reused} taken from the "
          f"store, {result.failed} failed, in {result.seconds:.0f} s")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
