"""Time a FLUX.1-dev-sized transformer (random weights, bf16) under edgediff plans, on a GPU.

The denoiser alone runs one generation's steps as FluxPipeline drives it (one call per step, the
timestep t / 1000, guidance embedded, the latent moved by an Euler flow step between calls) at the
published FLUX.1-dev config and a 1024^2 image (4096 image tokens, 512 text tokens). Plans:

* `full`: the uncompressed plan;
* `FirstBlockCache default`: diffusers' FirstBlockCache at its shipped threshold (0.05);
* `--plan FILE` (repeatable): a plan's cache section and steps (e.g. the best plan exported
  from a tiny-FLUX or digits-flux search), re-targeted at this model: its model section is
  replaced, since a searched plan's fingerprint is another model's.

Each plan runs `--warmup` untimed generations, then `--repeats` timed ones (CUDA synchronised);
the table gives the median seconds per generation, the speed-up over `full`, the share of the
transformer blocks that executed (random weights: a threshold cache skips what this input lets
it skip, not what a trained model would) and the peak GPU memory.

    .venv/bin/python bench/gpu_flux.py --plan best.json --out flux-gpu.md     # on a GPU
    .venv/bin/python bench/gpu_flux.py --tiny                                 # CPU smoke test
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from bench_tables import markdown_table

from evaluators.calls import Geometry, denoiser_call
from evaluators.executed import ExecutionTrace
from evaluators.families import facts_of
from evaluators.plan import Plan, PlanError
from evaluators.runtime import apply_plan, model_ref
from evaluators.techniques.first_block_cache import DEFAULT_THRESHOLD
from evaluators.zoo.deployed import DEPLOYED, TINY

FLUX = "flux.1-dev-1024"


def build_model(tiny: bool, device: str, dtype: torch.dtype) -> tuple[Any, Geometry]:
    """The transformer with random weights, made on `device` in `dtype` (no fp32 copy on the
    host: FLUX.1-dev's 12B parameters are 24 GB in bf16), and the geometry of one generation."""
    from diffusers import FluxTransformer2DModel

    if tiny:
        config, geometry = TINY["FluxTransformer2DModel"], Geometry(64, 64, 1, 16)
    else:
        entry = DEPLOYED[FLUX]
        config = entry.config
        geometry = Geometry(entry.height, entry.width, entry.frames, entry.text_tokens)
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = FluxTransformer2DModel.from_config(config)
    finally:
        torch.set_default_dtype(default)
    return model.eval(), geometry


def retarget(plan: Plan, model: Any, name: str) -> Plan:
    """`plan`'s steps and sections on this model (its model section replaced)."""
    body = plan.to_dict()
    body["model"] = vars(model_ref(model, name))
    body.pop("notes", None)  # a tiny search's geometry note is not this generation's
    return Plan.from_dict(body)


def plans(model: Any, steps: int, files: list[str], name: str) -> list[tuple[str, Plan]]:
    full = facts_of(model).full_plan(model_ref(model, name), steps, 1.0)
    fbc = Plan.from_dict({**full.to_dict(), "first_block_cache": {"threshold": DEFAULT_THRESHOLD}})
    out = [("full", full), (f"FirstBlockCache default ({DEFAULT_THRESHOLD:g})", fbc)]
    for file in files:
        out.append((f"{Path(file).name}", retarget(Plan.load(file), model, name)))
    return out


def generation(model: Any, plan: Plan, geometry: Geometry, device: str,
               dtype: torch.dtype) -> None:
    """One generation's denoiser calls (FluxPipeline's timesteps, an Euler flow step between)."""
    steps = plan.num_steps
    inputs = denoiser_call(model, 1, geometry, device=device)
    inputs = {k: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point()
              and k not in ("img_ids", "txt_ids") else v for k, v in inputs.items()}
    x = inputs.pop("hidden_states")
    sigmas = torch.linspace(1.0, 1.0 / steps, steps).tolist() + [0.0]
    for i in range(steps):
        t = torch.full((1,), sigmas[i], device=device, dtype=dtype)
        with model.cache_context("cond"):
            v = model(hidden_states=x, **{**inputs, "timestep": t})[0]
        x = x + (sigmas[i + 1] - sigmas[i]) * v


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_plan(model: Any, plan: Plan, geometry: Geometry, device: str, dtype: torch.dtype,
              warmup: int, repeats: int) -> tuple[list[float], float, float]:
    """(seconds of each timed generation, share of the blocks that ran, peak memory in GiB)."""
    blocks = len(model.transformer_blocks) + len(model.single_transformer_blocks)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    trace = ExecutionTrace(model)  # installed before the plan's hooks, as the trace needs
    try:
        with torch.no_grad(), apply_plan(model, plan) as applied:
            for _ in range(warmup):
                generation(model, plan, geometry, device, dtype)
                applied.reset()
            seconds = []
            for _ in range(repeats):
                _sync(device)
                start = time.perf_counter()
                generation(model, plan, geometry, device, dtype)
                _sync(device)
                seconds.append(time.perf_counter() - start)
                applied.reset()
    finally:
        trace.remove()
    ran = sum(trace.blocks_run().values())
    share = ran / (blocks * plan.num_steps * (warmup + repeats))
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0
    return seconds, share, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true",
                        help="the tiny FLUX twin on CPU in float32 (a smoke test of this script)")
    parser.add_argument("--device", help="torch device (default: cuda if present, else cpu)")
    parser.add_argument("--steps", type=int, default=28, help="denoising steps (FLUX.1-dev: 28)")
    parser.add_argument("--plan", action="append", default=[], help="a plan JSON file to time")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float32 if args.tiny else torch.bfloat16
    if not args.tiny and not device.startswith("cuda"):
        print("a FLUX.1-dev-sized transformer needs a GPU (24 GB of bf16 weights); use --tiny "
              "for a CPU smoke test", file=sys.stderr)
        return 2
    name = "tiny-flux" if args.tiny else FLUX
    model, geometry = build_model(args.tiny, device, dtype)
    try:
        todo = plans(model, args.steps, args.plan, name)
    except PlanError as err:
        print(f"gpu_flux: {err}", file=sys.stderr)
        return 2
    rows, base = [], None
    for label, plan in todo:
        seconds, share, peak = time_plan(model, plan, geometry, device, dtype, args.warmup,
                                         args.repeats)
        median = statistics.median(seconds)
        base = base or median
        rows.append([label, plan.num_steps, f"{share:.0%}", f"{median:.3f}",
                     f"{base / median:.2f}x", f"{peak:.1f}"])
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    head = (f"{name}, {geometry.width}x{geometry.height}, {dtype}, random weights, {gpu}, "
            f"torch {torch.__version__}; median of {args.repeats} generations after "
            f"{args.warmup} untimed")
    table = markdown_table(["plan", "steps", "blocks run", "s / generation", "speed-up",
                            "peak GiB"], rows)
    text = f"{head}\n\n{table}\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
