"""Cost of a plan: the MACs that actually execute for one generation, and measured latency.

`count_macs` runs the generation's denoiser calls with the plan applied under torch's
FlopCounterMode, step by step, on the `meta` device by default (a twin of the model built from its
config, so DiT-XL/2, PixArt and the Stable Diffusion U-Net count in seconds without weights).
Whatever the plan skips does not execute and is not counted; whatever it adds (the residual's
extra window pass) is. Multiply-accumulates = FLOPs / 2. The result's `footprint` reports the
parameters no operator reads in the whole generation, and the bytes they need not occupy
(`evaluators.footprint`).

FlopCounterMode has no formula for the CPU kernel of scaled-dot-product attention
(`_scaled_dot_product_flash_attention_for_cpu`) and counts it as zero; this module registers one
(the same count as the CUDA kernels: 2 * B * H * Nq * Nk * D MACs), so counts on CPU, CUDA and
meta agree.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from diffusers.models.attention_processor import Attention
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from evaluators.families import ModelFacts, facts_of
from evaluators.footprint import Footprint, ParameterUse
from evaluators.plan import Plan, PlanError
from evaluators.runtime import apply_plan, model_ref, plan_scheduler
from evaluators.runtime.attention import self_attention_layers

aten = torch.ops.aten
Convention = Literal["executed", "ditfastattn"]

_CONV = {aten.convolution, aten._convolution}
_LINEAR = {aten.mm, aten.addmm}
_ATTENTION = {aten.bmm, aten.baddbmm, aten._scaled_dot_product_flash_attention_for_cpu,
              aten._scaled_dot_product_efficient_attention, aten._scaled_dot_product_flash_attention,
              aten._scaled_dot_product_cudnn_attention}


@flop_counter.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu)
def _sdpa_cpu_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any,
                    **kwargs: Any) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


@dataclass
class MacCount:
    """MACs of one generation (`batch` model inputs per call, CFG halves included).

    Attributes:
        per_step: total MACs of each denoising step.
        per_step_by_type: each step's MACs by layer type: `conv`, `linear` (outside attention),
            `attention_proj` (q/k/v/out projections), `attention` (scores and weighted sum).
        convention: `executed` (what runs) or `ditfastattn` (the DiTFastAttn reference counter's
            charge for self-attention; see `count_macs`).
        footprint: the denoiser's parameters and those that never execute in the generation
            (depth-skip's dropped levels), with the bytes they need not occupy by dtype.
    """

    per_step: list[int]
    per_step_by_type: list[dict[str, int]]
    num_images: int
    batch: int
    convention: str = "executed"
    per_layer_attention: list[list[int]] = field(default_factory=list)
    footprint: Footprint | None = None

    @property
    def total(self) -> int:
        return sum(self.per_step)

    @property
    def per_image(self) -> float:
        return self.total / self.num_images

    @property
    def by_type(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for step in self.per_step_by_type:
            for k, v in step.items():
                out[k] = out.get(k, 0) + v
        return out


def meta_twin(model: torch.nn.Module) -> torch.nn.Module:
    """The same architecture on the `meta` device (no weights, no memory)."""
    with torch.device("meta"):
        twin = type(model).from_config(model.config)
    return twin.eval()


def _categorise(counts: dict[str, dict[Any, int]], attention_keys: set[str]) -> dict[str, int]:
    glob = counts.get("Global", {})
    conv = sum(v for op, v in glob.items() if op in _CONV)
    linear = sum(v for op, v in glob.items() if op in _LINEAR)
    core = proj = 0
    for key in attention_keys:
        ops = counts.get(key, {})
        core += sum(v for op, v in ops.items() if op in _ATTENTION)
        proj += sum(v for op, v in ops.items() if op in _LINEAR)
    total = sum(glob.values())
    other = total - conv - linear - core
    out = {"conv": conv // 2, "linear": (linear - proj) // 2, "attention_proj": proj // 2,
           "attention": core // 2}
    if other:
        out["other"] = other // 2
    return out


def count_macs(model: torch.nn.Module, plan: Plan | None = None, *, num_images: int = 1,
               num_inference_steps: int = 50, guidance_scale: float = 1.0,
               convention: Convention = "executed", device: str | torch.device = "meta",
               text_tokens: int = 120, geometry: Any = None) -> MacCount:
    """MACs of one generation of `num_images` images with `plan` (None: the uncompressed model).

    With guidance (> 1) every call carries both CFG halves (batch = 2 * num_images).
    `convention="ditfastattn"` charges self-attention (scores + weighted sum) as the DiTFastAttn
    reference counter does (`count_flops_attn` of the current upstream): a window step costs
    (right - left) / N of full attention (0 for a symmetric window), a residual-computing full step
    (1 + (right - left) / N), `asc` halves both products (scores and weighted sum), `ast` is free;
    everything else is counted as executed.
    `geometry` (`evaluators.calls.Geometry`): the image size, frames and text tokens of the
    generation, for families whose config fixes no sample size (FLUX, Qwen-Image, Wan; default:
    the published checkpoint's). A plan whose cache decides at run time which blocks run
    (FirstBlockCache) is refused: its cost is what executed in a real generation
    (`evaluators.executed`).
    """
    if convention not in ("executed", "ditfastattn"):
        raise PlanError(f"unknown MAC convention '{convention}': use executed or ditfastattn")
    facts = facts_of(model)
    if plan is None:
        plan = facts.full_plan(model_ref(model, "model"), num_inference_steps, guidance_scale)
    twin = _twin(model, device)
    attention_keys = {f"{type(twin).__name__}.{name}" for name, m in twin.named_modules()
                      if isinstance(m, Attention)}
    self_keys: list[str] = []
    if plan.attention is not None:
        names = {id(m): n for n, m in twin.named_modules()}
        self_keys = [f"{type(twin).__name__}.{names[id(a)]}" for a in self_attention_layers(twin)]
    use = ParameterUse(twin)
    per_step, by_type, per_layer = [], [], []
    batch = _batch(plan, num_images)
    for call in _generation(twin, plan, batch, device, text_tokens, geometry):
        with FlopCounterMode(display=False) as counter, use:
            call()
        counts = counter.get_flop_counts()
        by_type.append(_categorise(counts, attention_keys))
        per_layer.append([sum(v for op, v in counts.get(k, {}).items() if op in _ATTENTION)
                          // 2 for k in self_keys])
        per_step.append(sum(counts.get("Global", {}).values()) // 2)
    result = MacCount(per_step, by_type, num_images, batch, "executed", per_layer,
                      use.footprint(twin, _dtypes(model, twin)))
    if convention == "ditfastattn":
        result = _ditfastattn_convention(result, facts, plan, batch)
    return result


def count_footprint(model: torch.nn.Module, plan: Plan, *, device: str | torch.device = "meta",
                    text_tokens: int = 120, geometry: Any = None) -> Footprint:
    """The parameters `plan` never runs in one generation: `count_macs(...).footprint` without
    the MAC count, and the generation stops at the first step by which every parameter has been
    read (nothing later can make one unused), so a plan whose step 0 runs the whole model costs
    one call."""
    twin = _twin(model, device)
    use = ParameterUse(twin)
    total = sum(1 for _ in twin.parameters())
    for call in _generation(twin, plan, _batch(plan, 1), device, text_tokens, geometry):
        with use:
            call()
        if len(use.used) == total:
            break
    return use.footprint(twin, _dtypes(model, twin))


def _twin(model: torch.nn.Module, device: str | torch.device) -> torch.nn.Module:
    """What a count runs: a meta twin of the model (the model itself when already on meta), or
    the model on a real device."""
    if torch.device(device).type != "meta" or _on_meta(model):
        return model
    return meta_twin(model)


def _dtypes(model: torch.nn.Module, twin: torch.nn.Module) -> dict[str, torch.dtype] | None:
    return None if twin is model else {n: p.dtype for n, p in model.named_parameters()}


def _batch(plan: Plan, num_images: int) -> int:
    return num_images * (2 if plan.sampling.guidance_scale > 1 else 1)  # both CFG halves


def _generation(twin: torch.nn.Module, plan: Plan, batch: int, device: str | torch.device,
                text_tokens: int, geometry: Any) -> Iterator[Callable[[], Any]]:
    """One denoiser call per step of the plan's generation, with the plan applied (removed when
    the caller stops iterating); PlanError for a cache that decides at run time."""
    dynamic = [s.section for s in plan.sections if getattr(s, "input_dependent", False)]
    if dynamic:
        raise PlanError(f"plan.{dynamic[0]}: the cache decides during the generation which "
                        "blocks run, so a count on random inputs says nothing; count what "
                        "executed in a real generation (evaluators.executed.ExecutionTrace)")
    facts = facts_of(twin)
    device = torch.device(device)
    extra = {} if geometry is None else {"geometry": geometry}
    inputs = facts.family.dummy_inputs(twin, batch, device, text_tokens, **extra)
    timesteps = plan_scheduler(_default_scheduler(), plan)
    timesteps.set_timesteps(plan.num_steps)
    with torch.no_grad(), apply_plan(twin, plan) as applied:
        applied.reset()
        for t in timesteps.timesteps.tolist():
            step_inputs = dict(inputs, timestep=facts.family.timestep_input(t, batch, device))
            for runtime in applied.runtimes.values():  # meta timesteps cannot be read back
                if getattr(runtime, "tracker", None) is not None:
                    runtime.tracker.value = float(t)
            yield lambda step_inputs=step_inputs: twin(**step_inputs)


def _on_meta(model: torch.nn.Module) -> bool:
    p = next(model.parameters(), None)
    return p is not None and p.device.type == "meta"


def _default_scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler()


def _ditfastattn_convention(count: MacCount, facts: ModelFacts, plan: Plan,
                            batch: int) -> MacCount:
    """Self-attention recharged by the attention section's rule (`AttentionPlan.ditfastattn_macs`)."""
    if plan.attention is None:
        return replace(count, convention="ditfastattn")
    per_step, by_type, per_layer = [], [], []
    for step, (total, types, layers) in enumerate(zip(count.per_step, count.per_step_by_type,
                                                      count.per_layer_attention, strict=True)):
        charged = plan.attention.ditfastattn_macs(step, batch, facts.num_tokens or 0,
                                                  facts.hidden_dim or 0)
        delta = sum(charged) - sum(layers)
        per_step.append(total + delta)
        by_type.append(dict(types, attention=types["attention"] + delta))
        per_layer.append(charged)
    return MacCount(per_step, by_type, count.num_images, batch, "ditfastattn", per_layer,
                    count.footprint)


# --- latency -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Latency:
    """Wall-clock seconds of repeated runs (after warm-up)."""

    times: tuple[float, ...]
    num_images: int

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def per_image(self) -> float:
        return self.median / self.num_images


def time_call(fn: Callable[[], Any], *, warmup: int = 1, repeats: int = 5,
              num_images: int = 1) -> Latency:
    """Time `fn()`: `warmup` untimed calls, then `repeats` timed ones (CUDA synchronised)."""
    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return Latency(tuple(times), num_images)


def measure_latency(model: torch.nn.Module, scheduler: Any, plan: Plan | None = None, *,
                    num_images: int = 8, num_inference_steps: int = 50,
                    guidance_scale: float = 1.5, warmup: int = 1, repeats: int = 3,
                    seed: int = 0) -> Latency:
    """Latency of one generation of `num_images` class-conditional images with the project's
    sampling loop (the shipped models), with `plan` applied (None: the uncompressed model)."""
    from evaluators.sampling import denoise

    labels = torch.arange(num_images) % 10
    seeds = list(range(seed, seed + num_images))
    if plan is None:
        return time_call(lambda: denoise(model, scheduler, labels, seeds, num_inference_steps,
                                         guidance_scale),
                         warmup=warmup, repeats=repeats, num_images=num_images)
    sched = plan_scheduler(scheduler, plan)
    with apply_plan(model, plan):
        return time_call(lambda: denoise(model, sched, labels, seeds, plan.num_steps,
                                         plan.sampling.guidance_scale),
                         warmup=warmup, repeats=repeats, num_images=num_images)


def cpu_name() -> str:
    """The CPU's model name (what latencies were measured on)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
