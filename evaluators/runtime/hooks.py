"""Installing and removing hooks and attention processors so that the model is restored exactly."""

from __future__ import annotations

from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook


class Installation:
    """Everything one applied plan changed on a model, and how to undo it.

    Hooks go through diffusers' HookRegistry; on removal the registry and the instance-level
    `forward` it leaves behind are deleted again when edgediff created them, so the module's
    `__dict__` is as it was before.
    """

    def __init__(self) -> None:
        self._hooks: list[tuple[torch.nn.Module, str, bool, bool]] = []
        self._processors: list[tuple[torch.nn.Module, Any]] = []

    def add_hook(self, module: torch.nn.Module, hook: ModelHook, name: str) -> None:
        had_registry = hasattr(module, "_diffusers_hook")
        had_forward = "forward" in module.__dict__
        HookRegistry.check_if_exists_or_initialize(module).register_hook(hook, name)
        self._hooks.append((module, name, had_registry, had_forward))

    def set_processor(self, attention: torch.nn.Module, processor: Any) -> None:
        self._processors.append((attention, attention.processor))
        attention.set_processor(processor)

    def remove(self) -> None:
        for module, name, had_registry, had_forward in reversed(self._hooks):
            registry = module._diffusers_hook
            registry.remove_hook(name, recurse=False)
            if not registry.hooks:
                if not had_registry:
                    del module._diffusers_hook
                if not had_forward:
                    module.__dict__.pop("forward", None)
        for attention, processor in reversed(self._processors):
            attention.set_processor(processor)
        self._hooks.clear()
        self._processors.clear()
