"""What every technique module provides, and the one registry of plan sections.

A technique is one file in this package, in the shape of diffusers' `hooks/`: a frozen, documented
config dataclass that is also its plan section (`parse` validates the JSON, `to_dict` writes it),
the name of its installer on the torch side (imported only when a plan is applied, so plans stay
torch-free), and what the dashboard shows of it (`summary`, `timeline`). Decorate the class with
`@register`; the package imports every module in it, so the section is known wherever plans are read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from evaluators.fields import PlanError, drop_none

if TYPE_CHECKING:
    from evaluators.techniques.sampling import Sampling

# Installer(model, plan, state, installation) -> the technique's runtime (evaluators.runtime).
Installer = Callable[..., Any]


class Technique:
    """Base of a plan section's config (subclasses are frozen dataclasses).

    Class attributes:
        section: the key of the section in a plan file (`deepcache`, `attention`, ...).
        title: a short human name for messages and the dashboard.
        order: where the section sits in a plan file (lower first); also the order of installation.
        installer: `"module:function"` of the torch-side installer. Techniques that share one set
            of hooks (DeepCache and depth-skip on the same U-Net modules) name the same installer;
            it runs once and reads all of its sections from the plan.
        view: the dashboard's technique map this section draws into: `schedule` (one row per
            step: which steps run the whole network) or `attention` (a layer x step heatmap).
    """

    section: ClassVar[str]
    title: ClassVar[str]
    order: ClassVar[int] = 100
    installer: ClassVar[str]
    view: ClassVar[str] = "schedule"

    @classmethod
    def parse(cls, data: Any, sampling: Sampling) -> Technique:
        """Validate the section's JSON (`plan.<section>.<field>: problem; fix` on failure)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The section as JSON (fields that are None left out)."""
        return drop_none(vars(self))

    def check_with(self, sections: Mapping[str, Technique]) -> None:
        """Raise PlanError if this section cannot share a plan with the others."""

    def summary(self) -> dict[str, str]:
        """A few named values saying what the section changes (dashboard, `edgediff show`)."""
        return {}

    def timeline(self, num_steps: int) -> dict[str, Any]:
        """This section's entries in the dashboard's technique map of kind `view`."""
        return {}

    @classmethod
    def load_installer(cls) -> Installer:
        module, _, name = cls.installer.partition(":")
        return getattr(importlib.import_module(module), name)


SECTIONS: dict[str, type[Technique]] = {}


def register(cls: type[Technique]) -> type[Technique]:
    """Class decorator: make `cls.section` a plan section."""
    if cls.section in SECTIONS and SECTIONS[cls.section] is not cls:
        raise PlanError(f"two techniques claim the plan section '{cls.section}'")
    SECTIONS[cls.section] = cls
    ordered = sorted(SECTIONS.values(), key=lambda c: (c.order, c.section))
    SECTIONS.clear()
    SECTIONS.update({c.section: c for c in ordered})
    return cls
