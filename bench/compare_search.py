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

    .venv/bin/python bench/compare_search.py                                  # both models
    .venv/bin/python bench/compare_search.py --models digits-unet --budget 8 --out edgediff-out/bench
    .venv/bin/python bench/compare_search.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from dataclasses import replace
from pathlib import Path

from bench_tables import markdown_table

from evaluators.spec import EvalSpec
from search.driver import SearchConfig, run_search
from search.greedy import DEFAULT_CALIBRATION_SEED
from storage import Store


def _config(out: Path, name: str, model: str, spec: EvalSpec, **kw) -> SearchConfig:
    return SearchConfig(study=name, model=model, spec=spec,
                        db_url=f"sqlite:///{out / (name + '.db')}", cache_dir=str(out / "cache"),
                        **kw)


def _best_within(db_url: str, study: str, method: str, within: float) -> tuple[float, float] | None:
    with Store.open(db_url, create=False) as store:
        full = store.full_model_point(study)
        ok = [p for p in store.front(study, method=method) if p.fid <= full.fid + within]
        if not ok:
            return None
        best = min(ok, key=lambda p: p.macs)
        return full.macs / best.macs, best.fid


def compare(out: Path, model: str, spec: EvalSpec, budget: int, workers: int, within: float,
            seed: int) -> tuple[list, dict[str, float]]:
    """One seed's run of both methods: its table rows and each method's hypervolume."""
    config = _config(out, f"{model}-compare-s{seed}", model, spec, budget=budget, workers=workers,
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
    return rows + [[model, seed, "full model", 1, "", "", f"1.00x / {full.fid:.2f}"]], volumes


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
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    spec = replace(EvalSpec(), num_images=args.images, num_inference_steps=args.steps)
    compare_rows, summary_rows = [], []
    for model in args.models:
        runs = []
        for seed in args.seeds:
            rows, volumes = compare(out, model, spec, args.budget, args.workers, args.fid_within, seed)
            compare_rows += rows
            runs.append(volumes)
        summary_rows += summarise(model, runs)
    print(f"\n{args.images} images, {args.steps} steps, budget {args.budget} per method, "
          f"{args.workers} workers; hypervolume against (full MACs, 2 x full FID), full-model units\n")
    print(markdown_table(["model", "seed", "method", "evaluated", "front", "hypervolume",
                  f"best within +{args.fid_within:g} FID (MACs saving / FID)"], compare_rows))
    print("\nhypervolume over the seeds\n")
    print(markdown_table(["model", "method", "seeds", "mean", "sd", "range", "best of the methods"],
                 summary_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
