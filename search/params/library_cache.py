"""The `library_cache` parameters: which of diffusers' own caches a plan runs (one at most, as
diffusers allows) and that cache's knobs, all categorical:

- `cache`: none, first_block_cache, taylorseer_cache, faster_cache, pyramid_attention_broadcast
  (MagCache needs ratios calibrated at each step count and is not drawn here);
- `fbc_threshold`: around diffusers' 0.05 and the values ParaAttention's README compares;
- `taylorseer_interval`, `taylorseer_warmup`, `taylorseer_order`: the TaylorSeer tables' range;
- `fastercache_skip`, `fastercache_t_high`: attention reuse every N calls below t_high;
- `pab_skip`, `pab_low`, `pab_high`: self-attention broadcast every N calls inside (low, high).

A trial draws every knob (a flat space); only the chosen cache's knobs reach the plan, written in
canonical form, so points that differ only in unused knobs hash the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evaluators.plan import Plan
from evaluators.techniques.faster_cache import FasterCache
from evaluators.techniques.first_block_cache import FirstBlockCache
from evaluators.techniques.pyramid_attention_broadcast import PyramidAttentionBroadcast
from evaluators.techniques.taylorseer_cache import TaylorSeerCache
from search.params.base import ParamGroup, nearest, register_group

CACHES = ("none", "first_block_cache", "taylorseer_cache", "faster_cache",
          "pyramid_attention_broadcast")
CHOICES: dict[str, tuple[Any, ...]] = {
    "fbc_threshold": (0.02, 0.05, 0.08, 0.12, 0.2, 0.3),
    "taylorseer_interval": (2, 3, 4, 5, 6),
    "taylorseer_warmup": (1, 2, 3, 4),
    "taylorseer_order": (0, 1, 2),
    "fastercache_skip": (2, 3, 4),
    "fastercache_t_high": (500, 681, 800, 900),
    "pab_skip": (2, 3, 4, 6),
    "pab_low": (0, 100, 200),
    "pab_high": (700, 800, 900),
}


def section_of(params: Mapping[str, Any], steps: int) -> Any:
    """The plan section of a point (None for `cache: none`)."""
    cache = params["cache"]
    if cache == "first_block_cache":
        return FirstBlockCache(float(params["fbc_threshold"]))
    if cache == "taylorseer_cache":
        return TaylorSeerCache(int(params["taylorseer_interval"]),
                               min(int(params["taylorseer_warmup"]), steps), None,
                               int(params["taylorseer_order"]))
    if cache == "faster_cache":
        high = int(params["fastercache_t_high"])
        return FasterCache(int(params["fastercache_skip"]), (-1, high), 5, (-1, min(high, 641)))
    if cache == "pyramid_attention_broadcast":
        return PyramidAttentionBroadcast(int(params["pab_skip"]),
                                         (int(params["pab_low"]), int(params["pab_high"])))
    return None


@register_group
class LibraryCacheParams(ParamGroup):
    """One of diffusers' caches and its knobs."""

    section = "library_cache"

    def choices(self) -> dict[str, tuple[Any, ...]]:
        return {"cache": caches_for(self.base.model.model_class), **CHOICES}

    def build(self, params: Mapping[str, Any], body: dict[str, Any], steps: int) -> None:
        section = section_of(params, steps)
        if section is not None:
            body[section.section] = section.to_dict()

    def params_of(self, plan: Plan, steps: int) -> dict[str, Any]:
        out: dict[str, Any] = {"cache": "none", **{k: v[0] for k, v in CHOICES.items()}}
        for name in CACHES[1:]:
            sec = plan.section(name)
            if sec is None:
                continue
            out["cache"] = name
            if name == "first_block_cache":
                out["fbc_threshold"] = nearest(CHOICES["fbc_threshold"], sec.threshold)
            elif name == "taylorseer_cache":
                out.update(taylorseer_interval=nearest(CHOICES["taylorseer_interval"],
                                                       sec.cache_interval),
                           taylorseer_warmup=nearest(CHOICES["taylorseer_warmup"],
                                                     sec.disable_cache_before_step),
                           taylorseer_order=nearest(CHOICES["taylorseer_order"], sec.max_order))
            elif name == "faster_cache":
                out.update(fastercache_skip=nearest(CHOICES["fastercache_skip"],
                                                    sec.spatial_attention_block_skip_range),
                           fastercache_t_high=nearest(CHOICES["fastercache_t_high"],
                                                      sec.spatial_attention_timestep_skip_range[1]))
            else:
                low, high = sec.spatial_attention_timestep_skip_range
                out.update(pab_skip=nearest(CHOICES["pab_skip"],
                                            sec.spatial_attention_block_skip_range),
                           pab_low=nearest(CHOICES["pab_low"], low),
                           pab_high=nearest(CHOICES["pab_high"], high))
        return out

    def describe(self) -> list[tuple[str, str]]:
        return [(name, ", ".join(map(str, options))) for name, options in self.choices().items()]


DEFAULT_LABEL = "library default: "  # the label of a cache at diffusers' shipped defaults
_SECTIONS = (FirstBlockCache, TaylorSeerCache, FasterCache, PyramidAttentionBroadcast)


def caches_for(model_class: str | None) -> tuple[str, ...]:
    """The `cache` choices that run on `model_class` (SD3: no FirstBlockCache); all for None."""
    return ("none", *(c.section for c in _SECTIONS
                      if model_class is None or model_class in c.families))


def library_defaults(num_steps: int, model_class: str | None = None) -> list[tuple[str, Any]]:
    """(label, section) of diffusers' shipped defaults and the small sweeps the READMEs show:
    the "library default" baseline a search is compared with (the caches that run on
    `model_class`, or all)."""
    out: list[tuple[str, Any]] = []
    for cls in _SECTIONS:
        if model_class is not None and model_class not in cls.families:
            continue
        default = cls.library_default(num_steps)
        out.append((f"{DEFAULT_LABEL}{cls.title}", default))
        # "; " inside a label: a candidate's labels are a ", "-separated list (storage)
        out += [(f"library sweep: {next(iter(s.summary().values())).replace(', ', '; ')}", s)
                for s in cls.sweep(num_steps) if s != default]
    return out
