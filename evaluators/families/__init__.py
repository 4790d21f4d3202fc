"""Model families: one registry keyed by diffusers class name (`FAMILIES`), one module per family.

    DiTTransformer2DModel, Transformer2DModel -> dit      (transformer2d.py)
    PixArtTransformer2DModel                  -> pixart   (transformer2d.py)
    UNet2DModel                               -> unet     (unet.py)
    UNet2DConditionModel                      -> sd-unet  (unet.py)

A new family is a new module here that calls `register_family(...)`; every module of this package
is imported below. Ask `family_of(model or class name)` for the static facts and `facts_of(model)`
for what is read from a model (layers, tokens, skip branches).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from evaluators.families.base import FAMILIES, CfgOrder, Family, ModelFacts, register_family
from evaluators.fields import PlanError

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _module.name != "base" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["FAMILIES", "CfgOrder", "Family", "ModelFacts", "facts_of", "family_of",
           "register_family"]


def family_of(model: Any) -> Family:
    """The family of a model (or of a diffusers class name); PlanError if edgediff has none."""
    name = model if isinstance(model, str) else type(model).__name__
    family = FAMILIES.get(name)
    if family is None:
        raise PlanError(f"{name} is not supported by edgediff plans: supported models are "
                        f"{', '.join(FAMILIES)}")
    return family


def facts_of(model: Any) -> ModelFacts:
    """The facts of a loaded (or meta) denoiser."""
    return family_of(model).read(model)
