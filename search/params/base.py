"""One group of Optuna parameters per plan section, and the registry the search spaces read.

A group turns a few categorical parameters into its section of a plan and back: `choices()` (in
the order trials draw them), `build(params, body, steps)` (write the section into the plan's JSON
body, in canonical form, so points that do the same thing give the same content hash) and
`params_of(plan, steps)` (the nearest point of any plan). Groups are keyed by the plan section they
write (`attention`, `deepcache`, `depth_skip`) or `spacing` (the timestep placement of `sampling`);
a family lists its groups in `Family.search` (evaluators/families/), so the config side stays
optuna-free and the space of a new family is the groups it names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from evaluators.plan import Plan


class ParamGroup(ABC):
    """The parameters of one plan section for one model (its `facts`) around the `base` plan."""

    section: ClassVar[str]

    def __init__(self, facts: Mapping[str, Any], base: Plan, steps: Sequence[int]) -> None:
        self.facts = facts
        self.base = base
        self.steps = tuple(steps)

    @abstractmethod
    def choices(self) -> dict[str, tuple[Any, ...]]:
        """Every parameter of the group and its choices, in the order trials draw them."""

    @abstractmethod
    def build(self, params: Mapping[str, Any], body: dict[str, Any], steps: int) -> None:
        """Write the group's part of the point `params` into the plan body (`steps` steps)."""

    @abstractmethod
    def params_of(self, plan: Plan, steps: int) -> dict[str, Any]:
        """The group's parameters of the point nearest to `plan` (moved onto `steps` steps)."""

    def describe(self) -> list[tuple[str, str]]:
        """(parameter, choices) rows for docs and the CLI."""
        return [(name, ", ".join(map(str, options))) for name, options in self.choices().items()]


GROUPS: dict[str, type[ParamGroup]] = {}


def register_group(cls: type[ParamGroup]) -> type[ParamGroup]:
    """Class decorator: make `cls` the parameter group of `cls.section`."""
    GROUPS[cls.section] = cls
    return cls


def nearest(choices: Sequence[Any], value: float) -> Any:
    """The choice closest to `value` (ties go to the larger)."""
    return min(choices, key=lambda c: (abs(c - value), -c))
