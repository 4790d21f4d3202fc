"""Techniques: one module per plan section, one registry keyed by the section's name.

    SECTIONS["deepcache"]  -> DeepCache        (evaluators/techniques/deepcache.py)
    SECTIONS["depth_skip"] -> DepthSkip        (evaluators/techniques/depth_skip.py)
    SECTIONS["attention"]  -> AttentionPlan    (evaluators/techniques/attention.py)

`sampling` (steps, guidance, timestep spacing) is the one required section (`sampling.py`). A new
technique is a new module here whose config class is decorated with `@register`; every module of
this package is imported below, so no list needs editing. Torch-free: installers are named as
`"module:function"` strings and imported only when a plan is applied.
"""

from __future__ import annotations

import importlib
import pkgutil

from evaluators.techniques.base import SECTIONS, Technique, register

_NOT_SECTIONS = {"base", "sampling"}

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _module.name not in _NOT_SECTIONS and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["SECTIONS", "Technique", "register"]
