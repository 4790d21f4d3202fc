"""Does an exported plan keep its promise? Search small, export under `--fid-within`, re-measure big.

For each of `--seeds` (Optuna's sampler seed and the greedy's calibration seed 3 + s, as in
`bench/compare_search.py`), in one store under `--out`:
1. `edgediff search` at the search's sample size (`--images`, default the demo's 64 at 25 steps);
2. `edgediff export --fid-within X`, which picks the cheapest plan whose paired FID difference to
   the uncompressed model has its 95% upper bound within X (or says that none qualifies);
3. `edgediff evaluate` of the uncompressed plan and of the exported one on `--check-images` images
   whose seeds start at `--check-seed` (disjoint from the search's), in a study of their own, so the
   difference is paired on the same new seeds.
The table gives, per seed, what the search promised (the plan's FID difference and upper bound
at the search's size) and what the larger, held-out measurement found; "holds" says whether the
re-measured difference is within X.

    .venv/bin/python bench/export_holds.py                                    # 3 seeds, 500 images
    .venv/bin/python bench/export_holds.py --seeds 0 --check-images 1000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_tables import markdown_table


def edgediff(*args: str, json_out: bool = True) -> dict:
    """Run one edgediff command (with --json: its parsed output); exits on a failure."""
    command = [sys.executable, "-m", "edgediff", *args, *(["--json"] if json_out else [])]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    print(f"  {' '.join(args[:3])} ... {time.perf_counter() - began:.0f} s", file=sys.stderr)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout) if json_out else {}


def quality(evaluation: dict) -> dict:
    return (evaluation.get("extra") or {}).get("quality") or {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits-dit")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=4, help="evaluations per method")
    parser.add_argument("--images", type=int, default=64, help="images of the search")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--fid-within", type=float, default=5.0)
    parser.add_argument("--check-images", type=int, default=500)
    parser.add_argument("--check-seed", type=int, default=100_000)
    parser.add_argument("--out", default="edgediff-out/bench-export-holds")
    args = parser.parse_args()
    out = Path(args.out).absolute()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    db = f"sqlite:///{out / 'store.db'}"
    common = ["--db", db]
    check = ["--model", args.model, "--images", str(args.check_images), "--seed",
             str(args.check_seed), "--steps", str(args.steps), "--study", "held-out",
             "--cache-dir", str(out / "cache"), *common]
    edgediff("plan", "--model", args.model, "--plan-steps", str(args.steps), "-o",
             str(out / "full.json"), json_out=False)
    full = edgediff("evaluate", "--plan", str(out / "full.json"), *check)["evaluations"][-1]
    rows = []
    for seed in args.seeds:
        study = f"holds-s{seed}"
        edgediff("search", "--model", args.model, "--study", study, "--method", "both",
                 "--budget", str(args.budget), "--workers", "2", "--images", str(args.images),
                 "--steps", str(args.steps), "--calib-samples", "4", "--sampler-seed", str(seed),
                 "--calib-seed", str(3 + seed), "--cache-dir", str(out / "cache"),
                 "-o", str(out / f"{study}-search-best.json"), *common)
        plan_file = out / f"{study}.json"
        picked = subprocess.run([sys.executable, "-m", "edgediff", "export", study, "-o", str(plan_file),
                                 "--fid-within", str(args.fid_within), "--json", *common],
                                capture_output=True, text=True)
        if picked.returncode != 0:
            rows.append([seed, "none qualifies", "", "", "", "", "", picked.stderr.strip()[-120:]])
            continue
        promised = json.loads(picked.stdout)
        checked = edgediff("evaluate", "--plan", str(plan_file), "--method", "exported",
                           "--label", study, *check)["evaluations"][-1]
        q = quality(checked)
        delta, high = q.get("delta"), q.get("delta_high")
        if delta is None:
            delta = checked["fid"] - full["fid"]
        rows.append([
            seed, f"{full['macs_per_image'] / checked['macs_per_image']:.2f}x",
            _promise(promised), f"{checked['fid']:.2f}", f"{full['fid']:.2f}",
            f"{delta:+.2f}", "" if high is None else f"{high:+.2f}",
            "yes" if delta <= args.fid_within else "NO",
        ])
    print(f"\n{args.model}: search {args.images} images x {args.steps} steps, budget {args.budget} "
          f"per method; export --fid-within {args.fid_within}; held-out check on "
          f"{args.check_images} images from seed {args.check_seed} ({os.cpu_count()} CPUs)\n")
    print(markdown_table(["seed", "MAC speedup", "promised (search: difference, upper bound)",
                          "held-out FID", "full model's held-out FID", "held-out difference",
                          "its upper bound", "holds"], rows))
    return 0


def _promise(exported: dict) -> str:
    """The exported plan's paired difference and its upper bound, as measured by the search."""
    point = exported["point"]
    delta, high = point.get("delta"), point.get("delta_high")
    if delta is None:
        delta = point["fid"] - exported["full_model"]["fid"]
    return f"{delta:+.2f}" + ("" if high is None else f" (<= {high:+.2f})")


if __name__ == "__main__":
    raise SystemExit(main())
