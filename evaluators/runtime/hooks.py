"""Installing and removing hooks and attention processors so that the model is restored exactly."""

from __future__ import annotations

from collections.abc import Callable
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
        self._undo: list[tuple[int, Callable[[], None]]] = []

    def add_undo(self, undo: Callable[[], None]) -> None:
        """Run `undo` on removal, after the hooks added later are gone (last in, first out)."""
        self._undo.append((len(self._hooks), undo))

    def add_hook(self, module: torch.nn.Module, hook: ModelHook, name: str) -> None:
        had_registry = hasattr(module, "_diffusers_hook")
        had_forward = "forward" in module.__dict__
        HookRegistry.check_if_exists_or_initialize(module).register_hook(hook, name)
        self._hooks.append((module, name, had_registry, had_forward))

    def set_processor(self, attention: torch.nn.Module, processor: Any) -> None:
        self._processors.append((attention, attention.processor))
        attention.set_processor(processor)

    def remove(self) -> None:
        for index in range(len(self._hooks) - 1, -1, -1):
            module, name, had_registry, had_forward = self._hooks[index]
            while self._undo and self._undo[-1][0] > index:
                self._undo.pop()[1]()
            registry = module._diffusers_hook
            registry.remove_hook(name, recurse=False)
            if not registry.hooks:
                if not had_registry:
                    del module._diffusers_hook
                if not had_forward:
                    module.__dict__.pop("forward", None)
        while self._undo:
            self._undo.pop()[1]()
        for attention, processor in reversed(self._processors):
            attention.set_processor(processor)
        self._hooks.clear()
        self._processors.clear()
