"""Cost of the real architectures: MACs counted on the `meta` device from the published configs.

For every model of `evaluators.zoo.configs.PUBLISHED` this builds the architecture on `meta` (no
weights, no GPU) and counts with `evaluators.cost.count_macs`:

* the full model: MACs of one forward of one input (comparable with the papers' "MACs per step"),
  of one denoising step (both CFG halves when guidance > 1) and of the whole generation per image;
* plans of the kinds the papers report: DeepCache 1:N (uniform, branch 0, N = 2, 3, 5, 10) on the
  U-Nets; DiTFastAttn on the transformers, every self-attention layer from step 1 on `wars`,
  `wars+asc`, `full+asc`, or `ast` on odd steps (full on even ones), window tokens / 8 on each side
  (128 at DiT-XL/2-512, the paper's setting). For transformers the self-attention MACs (scores and
  weighted sum) are given in both conventions of `count_macs`: `executed` (what runs) and
  `ditfastattn` (the DiTFastAttn reference counter: symmetric window steps and the residual pass
  are free).

Guidance per model (override with `--guidance`): DDPM CIFAR-10 1.0 (unconditional), SD 1.5 7.5
(diffusers' default), DiT-XL/2 4.0 (the DiTFastAttn run default), PixArt 4.5 (diffusers' default).

    .venv/bin/python bench/costs.py                          # all models, 50 steps
    .venv/bin/python bench/costs.py --models dit-xl-2-256 --steps 10 --out costs.md
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from bench_tables import markdown_table

from evaluators.cost import MacCount, _ditfastattn_convention, count_macs
from evaluators.families import facts_of
from evaluators.plan import Plan
from evaluators.templates import uniform_plan
from evaluators.zoo.configs import PUBLISHED, build_on_meta

GUIDANCE = {"ddpm-cifar10": 1.0, "sd-1.5": 7.5, "dit-xl-2-256": 4.0, "dit-xl-2-512": 4.0,
            "pixart-alpha-512": 4.5, "pixart-alpha-1024": 4.5, "pixart-sigma-512": 4.5,
            "pixart-sigma-1024": 4.5}
DEEPCACHE_INTERVALS = (2, 3, 5, 10)
DEEPCACHE_BRANCH = 0
ATTENTION_KINDS = ("wars", "wars+asc", "full+asc", "ast-alternate")
# name -> (published G MACs per forward of one input, source)
PUBLISHED_FORWARD = {
    "ddpm-cifar10": (6.1, "DeepCache paper (REFERENCES.md)"),
    "dit-xl-2-256": (118.6, "DiT paper, Gflops = multiply-adds (REFERENCES.md)"),
}
# name -> (published G MACs per step with DeepCache, source)
PUBLISHED_DEEPCACHE = {"ddpm-cifar10": (2.63, "DeepCache paper, setting not in REFERENCES.md")}
G = 1e9


@dataclass
class ModelRow:
    """Full-model cost of one architecture."""

    name: str
    pixels: int
    tokens: int | None
    guidance: float
    per_forward: float
    per_step: float
    per_image: float


@dataclass
class PlanRow:
    """Cost of one plan on one architecture (MACs per image of the whole generation)."""

    name: str
    plan: str
    per_image: float
    avg_step: float
    ratio: float
    attn_executed: float | None = None
    attn_reference: float | None = None
    attn_cut_executed: float | None = None
    attn_cut_reference: float | None = None


def pixels_and_tokens(model: torch.nn.Module) -> tuple[int, int | None]:
    """Image side in pixels and (for transformers) the number of image tokens."""
    cfg = model.config
    if type(model).__name__ == "UNet2DModel":
        return cfg.sample_size, None
    facts = facts_of(model)
    if facts.denoiser == "transformer":
        return cfg.sample_size * 8, facts.num_tokens
    return cfg.sample_size * 8, None


def attention_kind_plan(name: str, model: torch.nn.Module, kind: str, steps: int, guidance: float,
                        window: int) -> Plan:
    """A DiTFastAttn plan: one method for every layer from step 1 (`ast-alternate`: odd steps)."""
    if kind != "ast-alternate":
        return uniform_plan(name, model, steps=steps, guidance_scale=guidance, attention=kind,
                            window=window)
    data = uniform_plan(name, model, steps=steps, guidance_scale=guidance, attention="ast",
                        window=window).to_dict()
    row = ["ast" if t % 2 else "full" for t in range(steps)]
    data["attention"]["methods"] = [row] * len(data["attention"]["methods"])
    return Plan.from_dict(data)


def self_attention(count: MacCount) -> float:
    """Self-attention MACs (scores + weighted sum) of the generation, per image."""
    return sum(sum(layers) for layers in count.per_layer_attention) / count.num_images


def count_model(name: str, steps: int, guidance: float | None) -> tuple[ModelRow, list[PlanRow]]:
    """Full-model and per-plan counts of one published architecture."""
    model, text_tokens = build_on_meta(name)
    g = GUIDANCE[name] if guidance is None else guidance
    pixels, tokens = pixels_and_tokens(model)
    kw: dict[str, Any] = {"num_images": 1, "text_tokens": text_tokens}
    full = count_macs(model, num_inference_steps=steps, guidance_scale=g, **kw)
    row = ModelRow(name, pixels, tokens, g, full.per_step[0] / full.batch / G, full.per_step[0] / G,
                   full.per_image / G)
    plans: list[PlanRow] = []
    if tokens is None:
        for n in (n for n in DEEPCACHE_INTERVALS if n <= steps):
            plan = uniform_plan(name, model, steps=steps, guidance_scale=g,
                                deepcache_branch=DEEPCACHE_BRANCH, interval=n)
            c = count_macs(model, plan, **kw)
            plans.append(PlanRow(name, f"DeepCache branch {DEEPCACHE_BRANCH} 1:{n}", c.per_image / G,
                                 c.per_image / steps / G, full.per_image / c.per_image))
        return row, plans
    full_attn = self_attention(full)
    window = tokens // 8
    for kind in ATTENTION_KINDS:
        plan = attention_kind_plan(name, model, kind, steps, g, window)
        c = count_macs(model, plan, **kw)
        # The same as count_macs(..., convention="ditfastattn") without a second pass on meta.
        ref = _ditfastattn_convention(c, facts_of(model), plan, c.batch)
        ex_attn, ref_attn = self_attention(c), self_attention(ref)
        plans.append(PlanRow(name, f"{kind} (window {window})", c.per_image / G, c.per_image / steps / G,
                             full.per_image / c.per_image, ex_attn / G, ref_attn / G,
                             1 - ex_attn / full_attn, 1 - ref_attn / full_attn))
    return row, plans


def _diff(ours: float, published: float) -> str:
    return f"{(ours - published) / published:+.1%}"


def model_table(rows: list[ModelRow], steps: int) -> str:
    """Full-model MACs per forward, per step and per image, with the published figure."""
    header = ["model", "px", "tokens", "guidance", "G/forward (1 input)", "G/step (CFG batch)",
              f"G/image ({steps} steps)", "published G/forward", "diff", "source"]
    out = []
    for r in rows:
        pub, src = PUBLISHED_FORWARD.get(r.name, (None, ""))
        out.append([r.name, str(r.pixels), "-" if r.tokens is None else str(r.tokens), f"{r.guidance:g}",
                    f"{r.per_forward:.2f}", f"{r.per_step:.2f}", f"{r.per_image:.1f}",
                    "-" if pub is None else f"{pub:g}", "-" if pub is None else _diff(r.per_forward, pub),
                    src or "-"])
    return markdown_table(header, out)


def deepcache_table(rows: list[PlanRow]) -> str:
    """DeepCache plans on the U-Nets; the average per step is per image per step (CFG included)."""
    header = ["model", "plan", "G/image", "G/step avg", "ratio full/plan", "published G/step", "diff",
              "source"]
    out = []
    for r in rows:
        pub, src = PUBLISHED_DEEPCACHE.get(r.name, (None, ""))
        out.append([r.name, r.plan, f"{r.per_image:.1f}", f"{r.avg_step:.2f}", f"{r.ratio:.2f}x",
                    "-" if pub is None else f"{pub:g}", "-" if pub is None else _diff(r.avg_step, pub),
                    src or "-"])
    return markdown_table(header, out)


def attention_table(rows: list[PlanRow]) -> str:
    """DiTFastAttn plans: total MACs and self-attention MACs in both conventions."""
    header = ["model", "plan", "G/image", "ratio full/plan", "attn G executed", "attn cut executed",
              "attn G ditfastattn", "attn cut ditfastattn"]
    out = [[r.name, r.plan, f"{r.per_image:.1f}", f"{r.ratio:.2f}x", f"{r.attn_executed:.1f}",
            f"{r.attn_cut_executed:.1%}", f"{r.attn_reference:.1f}", f"{r.attn_cut_reference:.1%}"]
           for r in rows]
    return markdown_table(header, out)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(PUBLISHED), choices=list(PUBLISHED))
    p.add_argument("--steps", type=int, default=50, help="denoising steps (default 50)")
    p.add_argument("--guidance", type=float, default=None,
                   help="one guidance scale for every model (default: per model, see the docstring)")
    p.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    models: list[ModelRow] = []
    plans: list[PlanRow] = []
    for name in args.models:
        t0 = time.perf_counter()
        row, rows = count_model(name, args.steps, args.guidance)
        models.append(row)
        plans.extend(rows)
        print(f"counted {name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    unets = [r for r in plans if r.attn_executed is None]
    transformers = [r for r in plans if r.attn_executed is not None]
    sections = [f"Full model ({args.steps} steps; G = 1e9 MACs)\n\n{model_table(models, args.steps)}"]
    if unets:
        sections.append(f"DeepCache (U-Nets)\n\n{deepcache_table(unets)}")
    if transformers:
        sections.append(f"DiTFastAttn (transformers; attention = self-attention scores + weighted sum, "
                        f"per image)\n\n{attention_table(transformers)}")
    sections.append(f"total time {time.perf_counter() - start:.1f} s on the meta device")
    text = "\n\n".join(sections)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
