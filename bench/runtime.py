"""Plan runtime on CPU: executed MACs against measured latency for the shipped models.

For every plan this prints the MACs of one generation per image (`evaluators.cost.count_macs`,
CFG halves included), the MAC ratio (full MACs / plan MACs), the measured latency per image
(`evaluators.cost.measure_latency`: one generation of `--images` images denoised as one batch,
the median of `--repeats` timed runs; the first plan of each model, "full", is preceded by one
untimed warm-up generation, the others by `--warmup`), the speedup (full latency / plan latency)
and speedup / MAC ratio (1.0: the plan saves wall-clock time in proportion to the MACs it saves).

"full" is the identity plan, applied like every other plan (for the DiT, all attention layers
`full` at every step through the plan's attention processors), so the ratios compare plans under
the same runtime; "no plan" is the bare model, for the cost of installing the identity plan.
"spread" is (slowest - fastest) / median of the timed runs. `--plans` adds plan files, such as the
best plans a search exported (`edgediff export`), each timed against its model's full plan.

    .venv/bin/python bench/runtime.py                          # both models, 32 images, 3 repeats
    .venv/bin/python bench/runtime.py --models digits-dit --images 8 --repeats 2
    .venv/bin/python bench/runtime.py --out bench-runtime.md   # also write the tables as markdown
    .venv/bin/python bench/runtime.py --no-grid --plans dit-optuna.json unet-greedy.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from evaluators.cost import count_macs, cpu_name, measure_latency, meta_twin
from evaluators.plan import AttentionPlan, DeepCache, DepthSkip, Plan, Sampling, full_plan
from evaluators.runtime import model_ref
from evaluators.zoo import load_model, load_scheduler

MODELS = ("digits-dit", "digits-unet")
STEPS = 50
GUIDANCE = 1.5
DIT_LAYERS = 8
UNET_BRANCHES = 9
DEEPCACHE_INTERVALS = (2, 3, 4, 5)
DEPTH_SKIP_LEVELS = (1, 2)


@dataclass
class Row:
    plan: str
    macs: float | None  # per image, one generation
    latency: float  # seconds per image (median run)
    spread: float  # (max - min) / median of the timed runs


# --- plans ---------------------------------------------------------------------------------------

def _attention(ref, steps: int, methods_per_step: Callable[[int], str], window: int = 32) -> Plan:
    """Every layer uses `methods_per_step(step)` at steps 1..steps-1 (step 0 is full)."""
    row = ("full",) + tuple(methods_per_step(s) for s in range(1, steps))
    return Plan(ref, Sampling(steps, GUIDANCE),
                attention=AttentionPlan((row,) * DIT_LAYERS, window_left=window, window_right=window))


def full(ref, name: str, steps: int) -> tuple[str, Plan]:
    """The identity plan every ratio is taken against."""
    if name == "digits-dit":
        return "full", full_plan(ref, steps, GUIDANCE, num_attention_layers=DIT_LAYERS)
    return "full", Plan(ref, Sampling(steps, GUIDANCE))


def dit_plans(ref, steps: int) -> list[tuple[str, Plan]]:
    plans = []
    for method in ("wars", "ast", "asc", "full+asc", "wars+asc"):
        plans.append((method, _attention(ref, steps, lambda s, m=method: m)))
    plans.append(("wars (window 16)", _attention(ref, steps, lambda s: "wars", window=16)))
    plans.append(("mixed: ast on odd steps, full on even",
                  _attention(ref, steps, lambda s: "ast" if s % 2 else "full")))
    plans.append(("mixed: ast on odd steps, wars+asc on even",
                  _attention(ref, steps, lambda s: "ast" if s % 2 else "wars+asc")))
    return plans


def unet_plans(ref, steps: int) -> list[tuple[str, Plan]]:
    sampling = Sampling(steps, GUIDANCE)
    plans = []
    for branch in range(UNET_BRANCHES):
        for interval in DEEPCACHE_INTERVALS:
            plans.append((f"DeepCache branch {branch}, interval {interval}",
                          Plan(ref, sampling, deepcache=DeepCache(branch=branch, interval=interval))))
    for levels in DEPTH_SKIP_LEVELS:
        plans.append((f"depth-skip {levels} level{'s' if levels > 1 else ''}",
                      Plan(ref, sampling, depth_skip=DepthSkip(drop_levels=levels))))
    return plans


# --- measuring -----------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def exported_plans(paths: list[Path], name: str) -> list[tuple[str, Plan]]:
    """The plan files (as `edgediff export` writes them) made for model `name`, labelled by file."""
    plans = [(path.stem, Plan.load(path)) for path in paths]
    for label, plan in plans:
        if plan.sampling.guidance_scale != GUIDANCE:
            log(f"note: {label} samples with guidance {plan.sampling.guidance_scale:g}, the full "
                f"plan with {GUIDANCE:g}: its ratios compare different settings")
    return [(label, plan) for label, plan in plans if plan.model.name == name]


def bench_model(name: str, images: int, repeats: int, warmup: int, *, steps: int = STEPS,
                grid: bool = True, files: list[Path] = ()) -> list[Row]:
    model = load_model(name)
    scheduler = load_scheduler(name)
    twin = meta_twin(model)
    ref = model_ref(model, name)
    plans = [full(ref, name, steps)]
    if grid:
        plans += dit_plans(ref, steps) if name == "digits-dit" else unet_plans(ref, steps)
    plans += exported_plans(list(files), name)
    rows: list[Row] = []

    def timed(label: str, plan: Plan | None) -> None:
        start = time.perf_counter()
        macs = None if plan is None else count_macs(twin, plan).per_image
        lat = measure_latency(model, scheduler, plan, num_images=images, num_inference_steps=steps,
                              guidance_scale=GUIDANCE, repeats=repeats,
                              warmup=max(warmup, 1) if label == "full" else warmup)
        spread = (max(lat.times) - min(lat.times)) / lat.median
        rows.append(Row(label, macs, lat.per_image, spread))
        log(f"[{name} {len(rows)}/{len(plans) + 1}] {label}: {lat.per_image * 1e3:.1f} ms/image"
            f" (spread {spread:.0%}), {time.perf_counter() - start:.0f} s")

    for label, plan in plans:
        timed(label, plan)
        if label == "full":
            timed("no plan (bare model)", None)
    return rows


# --- output --------------------------------------------------------------------------------------

def fmt_macs(macs: float | None) -> str:
    if macs is None:
        return "-"
    return f"{macs / 1e9:.2f} G" if macs >= 1e9 else f"{macs / 1e6:.0f} M"


def table(rows: list[Row]) -> str:
    full = next(r for r in rows if r.plan == "full")
    lines = ["| plan | MACs / image | MAC ratio | latency / image | speedup | speedup / MAC ratio "
             "| spread |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        speedup = full.latency / r.latency
        if r.macs is None:
            ratio = eff = "-"
        else:
            mac_ratio = full.macs / r.macs
            ratio, eff = f"{mac_ratio:.2f}x", f"{speedup / mac_ratio:.2f}"
        lines.append(f"| {r.plan} | {fmt_macs(r.macs)} | {ratio} | {r.latency * 1e3:.1f} ms | "
                     f"{speedup:.2f}x | {eff} | {r.spread:.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32,
                        help="images per generation, denoised as one batch (default 32)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed generations per plan; the median counts (default 3)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="untimed generations before each plan's timed ones (default 0; each "
                             "model's full plan, timed first, always gets at least 1)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="which shipped models to measure (default both)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--plans", type=Path, nargs="+", default=[],
                        help="plan files (from `edgediff export`) to time too, each beside the full "
                             "plan of its model")
    parser.add_argument("--steps", type=int, default=STEPS,
                        help=f"steps of the full plan and the per-technique plans (default {STEPS}); "
                             "give the step count of the search spec that found --plans")
    parser.add_argument("--no-grid", action="store_true",
                        help="time only the full plan and --plans, not the per-technique plans")
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    if args.images < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--images and --repeats must be >= 1, --warmup >= 0")

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    header = (f"torch {torch.__version__}, {args.threads} threads, {cpu_name()}; {args.steps} DDIM steps, "
              f"guidance {GUIDANCE}, {args.images} images per generation (one batch), median of "
              f"{args.repeats} timed generations per plan after {args.warmup} untimed "
              f"({max(args.warmup, 1)} before each model's full plan)")
    sections = []
    for name in args.models:
        log(f"== {name}")
        rows = bench_model(name, args.images, args.repeats, args.warmup, steps=args.steps,
                           grid=not args.no_grid, files=args.plans)
        sections.append(f"### {name}\n\n{table(rows)}")
        print(f"\n{sections[-1]}\n", flush=True)
    elapsed = time.perf_counter() - started
    print(f"{header}\ntotal time {elapsed / 60:.1f} min")
    if args.out is not None:
        args.out.write_text(f"{header}\n\n" + "\n\n".join(sections)
                            + f"\n\ntotal time {elapsed / 60:.1f} min\n")
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
