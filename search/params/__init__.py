"""Search parameters: one module per plan section (`GROUPS`), imported here, so a new technique's
parameters are one new file (`@register_group`) and a family names them in `Family.search`."""

from __future__ import annotations

import importlib
import pkgutil

from search.params.base import GROUPS, ParamGroup, nearest, register_group

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _module.name != "base" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["GROUPS", "ParamGroup", "nearest", "register_group"]
