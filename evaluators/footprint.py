"""Parameter footprint of a plan: the denoiser's parameters that never execute in a generation.

Kim et al. (ACCV 2024) report depth-skip as the share of parameters removed: the dropped levels,
the mid block and their decoder layers never run, so their weights need not be loaded at all. A
parameter counts as executed when any operator of any step reads it (`ParameterUse`, a dispatch
mode watching the operators' inputs), so the footprint follows what runs, whatever technique
skips it. Techniques that skip modules at some steps only (DeepCache, `ast`) skip no parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


@dataclass(frozen=True)
class Footprint:
    """The denoiser's parameters and those the plan never executes.

    Attributes:
        params: parameters of the denoiser (shared ones once).
        skipped: parameters no operator reads in the whole generation.
        skipped_bytes: memory the skipped parameters need not occupy, by dtype name
            ("float32", "float16", ...) as the model holds them.
    """

    params: int
    skipped: int
    skipped_bytes: dict[str, int] = field(default_factory=dict)

    @property
    def skipped_share(self) -> float:
        return self.skipped / self.params if self.params else 0.0

    @property
    def kept(self) -> int:
        return self.params - self.skipped

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "skipped": self.skipped,
                "skipped_bytes": dict(self.skipped_bytes)}


class ParameterUse(TorchDispatchMode):
    """Records which of the watched parameters any operator reads while it is active."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.watched = {id(p): name for name, p in model.named_parameters()}
        self.used: set[int] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        for value in tree_leaves((args, kwargs)):
            if isinstance(value, torch.Tensor) and id(value) in self.watched:
                self.used.add(id(value))
        return func(*args, **kwargs)

    def footprint(self, model: torch.nn.Module,
                  dtypes: dict[str, torch.dtype] | None = None) -> Footprint:
        """The footprint of what ran; `dtypes` (parameter name -> dtype) are the real model's
        when `model` is its meta twin."""
        params = skipped = 0
        skipped_bytes: dict[str, int] = {}
        for name, p in model.named_parameters():  # shared parameters are listed once
            params += p.numel()
            if id(p) in self.used:
                continue
            skipped += p.numel()
            dtype = (dtypes or {}).get(name, p.dtype)
            key = str(dtype).removeprefix("torch.")
            skipped_bytes[key] = skipped_bytes.get(key, 0) + p.numel() * dtype.itemsize
        return Footprint(params, skipped, skipped_bytes)
