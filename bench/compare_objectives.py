"""Optuna with --objective macs against --objective latency on one model, at the same budget:
each search's wall-clock time, its front's MAC ratios and measured speed-ups, and the hypervolume
of each front in both cost spaces (latency ratio and MAC ratio, each against its own study's full
model).

    .venv/bin/python bench/compare_objectives.py --model digits-dit --budget 6 --images 16 --steps 10

Both searches use the same spec (latency timed with --latency-repeats in both), each in its own
store, so neither reuses the other's measurements.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from evaluators.spec import EvalSpec
from search.driver import SearchConfig, run_search
from storage import Store, normalized_hypervolume, pareto_front


def run(objective: str, args: argparse.Namespace, folder: Path) -> dict:
    spec = EvalSpec(num_images=args.images, num_inference_steps=args.steps, batch_size=args.images,
                    latency_repeats=args.repeats)
    config = SearchConfig(study=f"obj-{objective}", model=args.model, spec=spec, methods=("optuna",),
                          budget=args.budget, workers=1, threads=args.threads, seed=args.seed,
                          db_url=f"sqlite:///{folder / (objective + '.db')}",
                          cache_dir=str(folder / f"cache-{objective}"), objective=objective)
    began = time.perf_counter()
    run_search(config)
    seconds = time.perf_counter() - began
    with Store.open(config.db_url) as store:
        full = store.full_model_point(config.study)
        points = store.points(config.study, method="optuna")
        front = store.front(config.study, method="optuna")
    return {"objective": objective, "seconds": seconds, "full": full, "front": front,
            "hv_latency": normalized_hypervolume(pareto_front(front, "latency"), full, "latency"),
            "hv_macs": normalized_hypervolume(pareto_front(front, "macs"), full, "macs"),
            "points": len(points)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits-dit")
    parser.add_argument("--budget", type=int, default=6)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="folder for the two stores (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.out or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        results = []
        for objective in ("macs", "latency"):
            results.append(run(objective, args, folder))
            print(f"{objective}: {results[-1]['seconds']:.0f} s", flush=True)
    print("| objective | wall s | plans | front: MAC ratio / measured speed-up / FID "
          "| HV (latency) | HV (MACs) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        full = r["full"]
        cells = "; ".join(f"{full.macs / p.macs:.2f} / {full.latency / p.latency:.2f} / {p.fid:.1f}"
                          for p in r["front"])
        print(f"| {r['objective']} | {r['seconds']:.0f} | {r['points']} | {cells} | "
              f"{r['hv_latency']:.3f} | {r['hv_macs']:.3f} |")
    print(f"full model: latency {results[0]['full'].latency * 1e3:.1f} / "
          f"{results[1]['full'].latency * 1e3:.1f} ms/img, FID {results[0]['full'].fid:.1f}")


if __name__ == "__main__":
    main()
