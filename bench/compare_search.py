"""Search benchmark on the embedded default: the greedy baseline against Optuna at equal budget.

For each model it runs, in a fresh store under `--out`:
1. for each of `--seeds`, `both` methods with `--budget` evaluations each (`--workers` workers):
   the hypervolume of each method's front against the same reference point (the full model's MACs
   and twice its FID, in units of the full model), the front sizes and the best FID within
   +`--fid-within` of the full model's at the fewest MACs. Seed s is Optuna's sampler seed and,
   for the DiTFastAttn greedy, calibration seed 3 + s (3 is the reference code's); the evaluation
   spec (images, their seeds) is the same for every seed, so every run scores against the same
   full model. A last table gives each method's mean and standard deviation over the seeds and
   how many seeds each method won.
2. with `--fronts`, per seed: every plan on a method's front and every plan of the fixed-list
   baseline (the library defaults of the diffusers-cache families) with its MAC ratio, FID and
   fidelity (1 - SSIM to the uncompressed model on the same seeds) with their 95% intervals and
   PSNR, then the baseline's plans against the best searched plan (Optuna's cheapest within
   +`--fid-within` FID of the full model).

    .venv/bin/python bench/compare_search.py                                  # both models
    .venv/bin/python bench/compare_search.py --models digits-unet --budget 8 --out edgediff-out/bench
    .venv/bin/python bench/compare_search.py --seeds 0 1 2
    .venv/bin/python bench/compare_search.py --models digits-flux --fronts --images 64 --steps 10
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from dataclasses import replace
from pathlib import Path

from bench_tables import markdown_table

from evaluators.plan import Plan
from evaluators.spec import EvalSpec
from search.driver import SearchConfig, run_search
from search.greedy import DEFAULT_CALIBRATION_SEED
from storage import FULL_METHOD, Store


def _config(out: Path, name: str, model: str, spec: EvalSpec, one_store: bool = False,
            **kw) -> SearchConfig:
    db = out / ("bench.db" if one_store else name + ".db")
    return SearchConfig(study=name, model=model, spec=spec, db_url=f"sqlite:///{db}",
                        cache_dir=str(out / "cache"), **kw)


def _best_within(db_url: str, study: str, method: str, within: float) -> tuple[float, float] | None:
    with Store.open(db_url, create=False) as store:
        full = store.full_model_point(study)
        ok = [p for p in store.front(study, method=method) if p.fid <= full.fid + within]
        if not ok:
            return None
        best = min(ok, key=lambda p: p.macs)
        return full.macs / best.macs, best.fid


def _interval(data: dict | None, digits: int) -> str:
    if not data:
        return ""
    return f"{data['estimate']:.{digits}f} [{data['low']:.{digits}f}, {data['high']:.{digits}f}]"


def _plan_row(store: Store, study, point, full) -> list:
    """MAC ratio, FID and fidelity (with intervals), PSNR, methods and labels of one plan."""
    info = store.find_evaluation(model=study.model, spec_hash=study.spec_hash,
                                 plan_hash=point.plan_hash)
    metrics = (info.extra.get("quality") or {}).get("metrics", {}) if info else {}
    return [f"{full.macs / point.macs:.2f}x", _interval(metrics.get("fid"), 2),
            _interval(metrics.get("fidelity"), 4), f"{point.psnr:.2f}" if point.psnr else "",
            ",".join(point.methods), "; ".join(x for x in point.labels if x),
            _describe(store.plan_json(study.name, point.plan_hash))]


def _describe(plan_json: str) -> str:
    """A plan in a few words: its steps and each section's summary."""
    plan = Plan.from_json(plan_json)
    parts = [f"{plan.num_steps} steps"]
    for section in plan.sections:
        parts += [text for text in section.summary().values() if text]
    return "; ".join(parts)


def front_rows(db_url: str, study_name: str, seed: int, within: float) -> tuple[list, list]:
    """One seed's plans: (each method's front and the baseline's fixed plans, the baseline's plans
    against the best searched plan)."""
    with Store.open(db_url, create=False) as store:
        study = store.get_study(study_name)
        full = store.full_model_point(study_name)
        points = {p.plan_hash: p for p in store.points(study_name)}
        shown: dict[str, str] = {}
        for method in (m for m in store.methods(study_name) if m != FULL_METHOD):
            for p in store.front(study_name, method=method):
                shown.setdefault(p.plan_hash, "front")
        baseline = [p for p in points.values() if any(m not in (FULL_METHOD, "optuna") for m in p.methods)
                    and p.fid is not None]
        for p in baseline:
            shown.setdefault(p.plan_hash, "baseline")
        ordered = sorted((points[h] for h in shown if h in points), key=lambda p: -p.macs)
        fronts = [[seed, where] + _plan_row(store, study, p, full)
                  for p in ordered for where in [shown[p.plan_hash]]]
        searched = [p for p in store.front(study_name, method="optuna")
                    if p.fid is not None and p.fid <= full.fid + within]
        best = min(searched, key=lambda p: p.macs) if searched else None
        versus = [[seed, "baseline"] + _plan_row(store, study, p, full)
                  for p in sorted(baseline, key=lambda p: -p.macs)]
        if best is not None:
            versus.append([seed, f"best searched (FID <= full + {within:g})"]
                          + _plan_row(store, study, best, full))
        versus.append([seed, "full model"] + _plan_row(store, study, full, full))
    return fronts, versus


def compare(out: Path, model: str, spec: EvalSpec, budget: int, workers: int, within: float,
            seed: int, one_store: bool = False) -> tuple[list, dict[str, float], SearchConfig]:
    """One seed's run of both methods: its table rows, each method's hypervolume, its config."""
    config = _config(out, f"{model}-compare-s{seed}", model, spec, one_store, budget=budget,
                     workers=workers,
                     seed=seed, greedy={"seed": DEFAULT_CALIBRATION_SEED + seed})
    result = run_search(config, report=lambda line: print("  " + line, file=sys.stderr))
    rows, volumes = [], {}
    for method, summary in result.methods.items():
        best = _best_within(config.db_url, config.study, method, within)
        volumes[method] = summary.hypervolume
        rows.append([model, seed, method, summary.done, len(summary.front),
                     f"{summary.hypervolume:.4f}",
                     "" if best is None else f"{best[0]:.2f}x / {best[1]:.2f}"])
    full = result.full
    return rows + [[model, seed, "full model", 1, "", "", f"1.00x / {full.fid:.2f}"]], volumes, config


def summarise(model: str, runs: list[dict[str, float]]) -> list:
    """Mean and standard deviation of each method's hypervolume over the seeds, and its wins."""
    rows = []
    for method in runs[0]:
        values = [run[method] for run in runs]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        wins = sum(run[method] > max(v for m, v in run.items() if m != method) for run in runs)
        rows.append([model, method, len(values), f"{statistics.fmean(values):.4f}", f"{sd:.4f}",
                     f"{min(values):.4f} .. {max(values):.4f}", f"{wins} of {len(values)}"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["digits-dit", "digits-unet"])
    parser.add_argument("--budget", type=int, default=6, help="evaluations per method (compare)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the comparison runs")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="search seeds of the comparison runs (one fresh store each)")
    parser.add_argument("--fid-within", type=float, default=5.0)
    parser.add_argument("--out", default="edgediff-out/bench-search")
    parser.add_argument("--one-store", action="store_true",
                        help="every seed's study in one store: a plan another seed measured under "
                             "the same spec is taken from it, not measured again")
    parser.add_argument("--fronts", action="store_true",
                        help="also print each seed's front with intervals and fidelity")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    spec = replace(EvalSpec(), num_images=args.images, num_inference_steps=args.steps)
    compare_rows, summary_rows, front_tables, versus_tables = [], [], [], []
    for model in args.models:
        runs = []
        for seed in args.seeds:
            rows, volumes, config = compare(out, model, spec, args.budget, args.workers,
                                            args.fid_within, seed, args.one_store)
            compare_rows += rows
            runs.append(volumes)
            if args.fronts:
                fronts, versus = front_rows(config.db_url, config.study, seed, args.fid_within)
                front_tables += [[model] + r for r in fronts]
                versus_tables += [[model] + r for r in versus]
        summary_rows += summarise(model, runs)
    print(f"\n{args.images} images, {args.steps} steps, budget {args.budget} per method, "
          f"{args.workers} workers; hypervolume against (full MACs, 2 x full FID), full-model units\n")
    print(markdown_table(["model", "seed", "method", "evaluated", "front", "hypervolume",
                  f"best within +{args.fid_within:g} FID (MACs saving / FID)"], compare_rows))
    print("\nhypervolume over the seeds\n")
    print(markdown_table(["model", "method", "seeds", "mean", "sd", "range", "best of the methods"],
                 summary_rows))
    if args.fronts:
        plan_headers = ["MACs saving", "FID [95%]", "fidelity 1-SSIM [95%]", "PSNR", "methods",
                        "label", "plan"]
        print("\neach seed's fronts (every method) and the baseline's plans\n")
        print(markdown_table(["model", "seed", "shown as"] + plan_headers, front_tables))
        print("\nthe baseline's plans against the best searched plan\n")
        print(markdown_table(["model", "seed", "plan"] + plan_headers, versus_tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
