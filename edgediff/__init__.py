"""edgediff: automated compression search for diffusion models.

Applying an exported plan needs torch, diffusers and this package only:

    import edgediff

    with edgediff.apply_plan(pipe, "plan.json"):      # a path or an edgediff.Plan
        images = pipe(..., num_inference_steps=25).images
    edgediff.count_macs(pipe, "plan.json").per_image

`Plan`, `apply_plan` and `count_macs` are imported when first used, so `import edgediff` stays
cheap and brings in no Ray, Optuna or SQLAlchemy (the CLI, `edgediff.cli`, imports what it runs).
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import Any

try:
    __version__ = metadata.version("edgediff")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.1.0"

__all__ = ["Plan", "__version__", "apply_plan", "count_macs"]

_PUBLIC = {"Plan": "evaluators.plan", "apply_plan": "edgediff.api", "count_macs": "edgediff.api"}


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'edgediff' has no attribute {name!r}")
    value = getattr(import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
