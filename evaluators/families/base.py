"""What edgediff knows about a model family, and the one registry of families by diffusers class.

A family (`Family`) holds the facts that are the same for every model of its classes: the kind of
denoiser, which plan sections apply (and which a plan must hold), the order of the classifier-free
guidance halves in the batch. `ModelFacts` adds what is read from one loaded (or meta) model:
self-attention layers and tokens of a transformer, skip branches and resolution levels of a U-Net.
Everything that needs to know what kind of model it holds asks these (`facts_of(model)`,
`family_of(class_name)`) instead of looking for attributes.

Torch-free at import: the readers import torch-side code when they read a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from evaluators.fields import PlanError
from evaluators.techniques import SECTIONS

if TYPE_CHECKING:
    import torch

    from evaluators.plan import ModelRef, Plan

Denoiser = Literal["transformer", "unet"]
# Which CFG half comes first in the batch: DiT batches (cond, uncond), PixArt and Stable
# Diffusion (uncond, cond); "cond-first" also for edgediff's own sampling loop.
CfgOrder = Literal["cond-first", "uncond-first"]


@dataclass(frozen=True)
class ModelFacts:
    """The facts of one model that plans, costs and search spaces depend on.

    Attributes:
        family: the model's family.
        model_class: its diffusers class name.
        num_layers: self-attention layers (transformers), else None.
        num_tokens: tokens per image of the transformer's sequence, else None.
        hidden_dim: heads x head dimension of the self-attention (transformers), else None.
        skip_levels: resolution level of each U-Net skip branch (DeepCache's numbering), else ().
        cfg_order: which classifier-free guidance half comes first in the batch (`asc` computes
            the conditional one).
    """

    family: Family
    model_class: str
    num_layers: int | None = None
    num_tokens: int | None = None
    hidden_dim: int | None = None
    skip_levels: tuple[int, ...] = ()
    cfg_order: CfgOrder = "cond-first"

    @property
    def denoiser(self) -> Denoiser:
        return self.family.denoiser

    @property
    def num_branches(self) -> int:
        return len(self.skip_levels)

    @property
    def max_level(self) -> int:
        return max(self.skip_levels, default=0)

    def search_facts(self) -> dict[str, Any]:
        """The JSON-able facts a search space reads (they cross process boundaries)."""
        if self.denoiser == "transformer":
            out: dict[str, Any] = {"kind": "transformer", "num_layers": self.num_layers,
                                   "num_tokens": self.num_tokens}
        else:
            out = {"kind": "unet", "num_branches": self.num_branches, "max_level": self.max_level,
                   "skip_levels": list(self.skip_levels)}
        out["groups"] = list(self.family.search)
        if self.family.method_family is not None:  # whose baseline search method it runs
            out["method_family"] = self.family.method_family
        return out

    def full_plan(self, ref: ModelRef, num_inference_steps: int, guidance_scale: float) -> Plan:
        """The uncompressed plan of this model (all `full` where a section is required)."""
        from evaluators.plan import full_plan

        layers = self.num_layers if "attention" in self.family.required else None
        return full_plan(ref, num_inference_steps, guidance_scale, layers)


@dataclass(frozen=True)
class Family:
    """A model family: the classes it covers and how edgediff treats them.

    Attributes:
        name: short name (`dit`, `pixart`, `unet`, `sd-unet`).
        classes: the diffusers class names of its denoisers.
        denoiser: `transformer` or `unet` (also the pipeline attribute that holds it).
        techniques: plan sections that apply to it, in `evaluators/techniques/`.
        required: sections every plan of the family holds, with the hint to add one.
        cfg_order: which classifier-free guidance half comes first in the batch.
        search: the search's parameter groups for the family, after `steps`, in the order trials
            draw them (`search/params/<name>.py`: a plan section, or `spacing`).
        method_family: which search methods apply, where not the denoiser kind's
            (`library-cache` for the families that run diffusers' caches).
        refused: plan sections refused on this family with the reason (said in the one-line
            refusal instead of the generic "does not apply").
    """

    name: str
    classes: tuple[str, ...]
    denoiser: Denoiser
    techniques: tuple[str, ...]
    required: Mapping[str, str] = field(default_factory=dict)
    cfg_order: CfgOrder = "cond-first"
    search: tuple[str, ...] = ()
    method_family: str | None = None
    refused: Mapping[str, str] = field(default_factory=dict)

    def read(self, model: torch.nn.Module) -> ModelFacts:
        """The facts of a loaded (or meta) model; PlanError for a structure plans cannot handle."""
        raise NotImplementedError

    def dummy_inputs(self, model: torch.nn.Module, batch: int, device: torch.device,
                     text_tokens: int) -> dict[str, Any]:
        """Random inputs of the right shapes for one denoiser call (no timestep)."""
        raise NotImplementedError

    def timestep_input(self, t: float, batch: int, device: Any) -> Any:
        """The `timestep` argument of one call at timestep t (0..1000 scale), as the family's
        pipelines pass it (an integer tensor here; FLUX and Qwen-Image take t / 1000)."""
        import torch

        return torch.full((batch,), t, device=device, dtype=torch.long)

    def cfg_order_of(self, model: Any) -> CfgOrder:
        """The CFG order of this model (the family's, unless its config says otherwise)."""
        return self.cfg_order

    def check_sections(self, plan: Plan, model_class: str) -> None:
        """Raise PlanError unless every section of `plan` applies here and the required ones are
        present."""
        for name in plan.section_names:
            if name in self.refused:
                raise PlanError(
                    f"plan.{name}: {SECTIONS[name].title} is not supported on {model_class} (the "
                    f"{self.name} family: {self.refused[name]}); use the caches "
                    f"({', '.join(self.techniques)}) instead")
            if name not in self.techniques:
                raise PlanError(
                    f"plan.{name}: {SECTIONS[name].title} does not apply to {model_class} "
                    f"({self.denoiser}s of the {self.name} family); use "
                    f"{' or '.join(self.techniques)} sections")
        for name, hint in self.required.items():
            if plan.section(name) is None:
                raise PlanError(f"{model_class} is a {self.denoiser} but the plan has no {name} "
                                f"section; add one ({hint})")


FAMILIES: dict[str, Family] = {}  # diffusers class name -> family


def register_family(family: Family) -> Family:
    """Make `family` the one for each of its classes."""
    unknown = [t for t in (*family.techniques, *family.required) if t not in SECTIONS]
    if unknown:
        raise PlanError(f"family '{family.name}' names unknown plan section(s) {unknown}")
    for cls in family.classes:
        if cls in FAMILIES and FAMILIES[cls] is not family:
            raise PlanError(f"{cls} is claimed by families '{FAMILIES[cls].name}' and "
                            f"'{family.name}'")
        FAMILIES[cls] = family
    return family
