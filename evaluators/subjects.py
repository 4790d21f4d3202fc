"""What an evaluation generates with: the shipped digits models (edgediff's own sampling loop) or a
diffusers pipeline (real checkpoints: DiT by class label, PixArt / Stable Diffusion by prompt,
DDPM / DDIM unconditional).

A subject generates images for a list of seeds and conditions with a plan applied, as floats in
[0, 1], shape (N, C, H, W). Image k depends only on its own seed and condition, not on the batch.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from evaluators.data import NUM_CLASSES, to_unit
from evaluators.plan import Plan
from evaluators.runtime import apply_plan, denoiser_of, plan_scheduler
from evaluators.zoo import ModelLoadError, resolve

Condition = int | str | None


class Subject(ABC):
    """A model that generates images under a plan.

    Attributes:
        name: the model's name (registry name, folder or hub id).
        denoiser: the network plans act on (the U-Net or transformer).
        conditioning: "class", "prompt" or "none".
        num_classes: classes a class-conditional model knows (None otherwise).
    """

    name: str
    denoiser: torch.nn.Module
    conditioning: str
    num_classes: int | None = None
    negative_prompt: str | None = None  # CFG's unconditional prompt (`evaluators.settings`)

    @abstractmethod
    def generate_batch(self, plan: Plan, seeds: Sequence[int], conditions: Sequence[Condition],
                       on_step: Callable[[], None] | None = None) -> torch.Tensor:
        """Images for these seeds and conditions with `plan` applied, floats in [0, 1];
        `on_step` is called after each denoising step where the subject can tell."""

    def conditions(self, spec: Any, count: int) -> list[Condition]:
        """The condition of each of the first `count` images of an evaluation spec; ModelLoadError
        for conditions this model does not take (they would change the spec's hash and nothing else)."""
        self._check_conditions(spec)
        if self.conditioning == "class":
            return list(spec.labels(count, self.num_classes or 1))
        if self.conditioning == "prompt":
            if spec.prompts is None:
                raise ModelLoadError(f"'{self.name}' is a text-to-image model: give prompts "
                                     "(--prompts FILE, or EvalSpec(prompts=...))")
            return list(spec.prompt_list(count))
        return [None] * count

    def _check_conditions(self, spec: Any) -> None:
        kind = {"class": "a class-conditional", "prompt": "a text-to-image",
                "none": "an unconditional"}.get(self.conditioning, "this")
        if spec.prompts is not None and self.conditioning != "prompt":
            raise ModelLoadError(f"'{self.name}' is {kind} model: it takes no prompts; leave "
                                 "--prompts out")
        if spec.classes is not None:
            if self.conditioning != "class":
                raise ModelLoadError(f"'{self.name}' is {kind} model: it takes no class labels; "
                                     "leave --classes out")
            bad = [c for c in spec.classes if c >= (self.num_classes or 1)]
            if bad:
                raise ModelLoadError(f"class {bad[0]} is out of range: '{self.name}' knows classes "
                                     f"0..{(self.num_classes or 1) - 1}; give --classes in that range")

    def generate(self, plan: Plan, seeds: Sequence[int], conditions: Sequence[Condition],
                 batch_size: int, progress: bool = False, desc: str = "sampling") -> torch.Tensor:
        out = []
        bar_format = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total} img [{elapsed}<{remaining}]"
        with tqdm(total=len(seeds), desc=desc, disable=not progress, leave=False,
                  bar_format=bar_format) as bar:
            for start in range(0, len(seeds), batch_size):
                stop = min(start + batch_size, len(seeds))
                shown = bar.n
                step = (stop - start) / plan.num_steps  # images' worth of work per denoising step
                out.append(self.generate_batch(plan, seeds[start:stop], conditions[start:stop],
                                               on_step=lambda step=step: bar.update(step)))
                bar.update(shown + (stop - start) - bar.n)  # exact count after each batch
        return torch.cat(out)

    def class_accuracy(self, images: torch.Tensor, conditions: Sequence[Condition]) -> float | None:
        """Share of images a classifier reads as the requested class (None where there is none)."""
        return None


class DigitsAccuracy:
    """Class accuracy read by the shipped digits classifier (the shipped generators' subjects)."""

    _classifier: torch.nn.Module | None = None

    def class_accuracy(self, images: torch.Tensor, conditions: Sequence[Condition]) -> float | None:
        if self._classifier is None:
            from evaluators.zoo import shipped_classifier

            self._classifier = shipped_classifier()
        labels = torch.tensor(list(conditions), dtype=torch.long)
        return float(self._classifier.accuracy(images * 2.0 - 1.0, labels))


class DigitsSubject(DigitsAccuracy, Subject):
    """A shipped digits generator, sampled with edgediff's DDIM loop (conditional half first)."""

    conditioning = "class"
    num_classes = NUM_CLASSES

    def __init__(self, name: str, model: torch.nn.Module, scheduler: Any,
                 classifier: torch.nn.Module | None = None) -> None:
        self.name, self.denoiser, self.scheduler = name, model, scheduler
        self._classifier = classifier

    def generate_batch(self, plan: Plan, seeds: Sequence[int], conditions: Sequence[Condition],
                       on_step: Callable[[], None] | None = None) -> torch.Tensor:
        from evaluators.sampling import denoise

        labels = torch.tensor(list(conditions), dtype=torch.long)
        with apply_plan(self.denoiser, plan):
            images = denoise(self.denoiser, plan_scheduler(self.scheduler, plan), labels, list(seeds),
                             plan.num_steps, plan.sampling.guidance_scale, on_step)
        return to_unit(images)


class PipelineSubject(Subject):
    """A diffusers pipeline: DiTPipeline or DigitsFluxPipeline (class labels), PixArt / Stable
    Diffusion (prompts), DDIMPipeline (unconditional; a DDPMPipeline is sampled as DDIM)."""

    def __init__(self, name: str, pipeline: Any) -> None:
        self.name = name
        self.pipeline = _as_ddim(pipeline)
        self.denoiser = denoiser_of(self.pipeline)
        kind = type(self.pipeline).__name__
        if kind == "DiTPipeline":
            self.conditioning = "class"
            self.num_classes = int(self.denoiser.config.num_embeds_ada_norm)
        elif kind == "DigitsFluxPipeline":
            self.conditioning = "class"
            self.num_classes = int(self.pipeline.text_encoder.config.num_classes)
        elif hasattr(self.pipeline, "encode_prompt"):
            self.conditioning = "prompt"
        else:
            self.conditioning = "none"

    def generate_batch(self, plan: Plan, seeds: Sequence[int], conditions: Sequence[Condition],
                       on_step: Callable[[], None] | None = None) -> torch.Tensor:
        device = self.denoiser.device
        generators = [torch.Generator(device).manual_seed(s) for s in seeds]
        kwargs: dict[str, Any] = {"num_inference_steps": plan.num_steps, "generator": generators,
                                  "output_type": "np"}
        if self.conditioning == "class":
            kwargs.update(class_labels=list(conditions), guidance_scale=plan.sampling.guidance_scale)
        elif self.conditioning == "prompt":
            kwargs.update(prompt=list(conditions), guidance_scale=plan.sampling.guidance_scale)
            if self.negative_prompt is not None:
                kwargs["negative_prompt"] = [self.negative_prompt] * len(seeds)
        else:
            kwargs.update(batch_size=len(seeds), eta=0.0)
        with torch.no_grad(), apply_plan(self.pipeline, plan):
            images = self.pipeline(**kwargs).images
        images = torch.as_tensor(images)
        return images.permute(0, 3, 1, 2).float().clamp(0.0, 1.0)


class DigitsFluxSubject(DigitsAccuracy, PipelineSubject):
    """digits-flux: its DigitsFluxPipeline (FLUX's sampling), class accuracy by the classifier."""

    @property
    def geometry(self) -> Any:
        """The generation's shape for MAC counts: 64 image tokens and the prompt's 4, not the
        1024², 512-token default of FLUX.1-dev."""
        return self.pipeline.geometry

    def __init__(self, name: str, pipeline: Any) -> None:
        super().__init__(name, pipeline)
        self.executed: dict[str, tuple[int, int, list[int]]] = {}  # plan hash -> (MACs, images,
        # MACs per call) of the generations a run-time cache (FirstBlockCache) decided

    def generate_batch(self, plan: Plan, seeds: Sequence[int], conditions: Sequence[Condition],
                       on_step: Callable[[], None] | None = None) -> torch.Tensor:
        if not any(getattr(s, "input_dependent", False) for s in plan.sections):
            return super().generate_batch(plan, seeds, conditions, on_step)
        from evaluators.executed import ExecutionTrace, unit_macs

        trace = ExecutionTrace(self.denoiser)  # before the plan's hooks, as the trace needs
        try:
            images = super().generate_batch(plan, seeds, conditions, on_step)
        finally:
            trace.remove()
        calls = trace.macs_per_call(unit_macs(self.denoiser, self.geometry))
        macs, done, per_call = self.executed.get(plan.content_hash(), (0, 0, []))
        self.executed[plan.content_hash()] = (macs + sum(calls), done + len(seeds),
                                              per_call + calls)
        return images


def _as_ddim(pipeline: Any) -> Any:
    """Plans are measured with DDIM: a DDPMPipeline becomes a DDIMPipeline on the same U-Net."""
    if type(pipeline).__name__ != "DDPMPipeline":
        return pipeline
    from diffusers import DDIMPipeline, DDIMScheduler

    return DDIMPipeline(pipeline.unet, DDIMScheduler.from_config(pipeline.scheduler.config))


def load_subject(name: str, device: str | torch.device = "cpu") -> Subject:
    """A registry name, local folder or hub id to a subject that can generate images."""
    from evaluators.zoo import SHIPPED, load_model, load_scheduler

    entry = check_drivable(name)
    if entry.model_class and entry.kind == "classifier":
        raise ModelLoadError(f"'{name}' is a classifier, not a generator: evaluate one of the "
                             "generators ('edgediff models' lists them)")
    if entry.is_flux and _is_digits_flux(entry.source):
        from evaluators.zoo.flux_pipeline import load_flux_pipeline

        return DigitsFluxSubject(name, load_flux_pipeline(name, device))
    if entry.shipped and name in SHIPPED:
        return DigitsSubject(name, load_model(name, device), load_scheduler(name))
    from diffusers import DiffusionPipeline

    if _embedded_prompts(entry):
        from evaluators.prompt_embeds import (
            EmbeddedPromptSubject,
            PromptEmbeddings,
            load_embedded_pipeline,
        )

        return EmbeddedPromptSubject(name, load_embedded_pipeline(entry.source, device),
                                     PromptEmbeddings.load(entry.source))
    try:
        pipeline = DiffusionPipeline.from_pretrained(entry.source)
    except (OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelLoadError(
            f"could not load the pipeline '{entry.source}' ({first}): if this machine cannot reach "
            "the model hub, download the repository where it can and pass the local folder"
        ) from err
    return PipelineSubject(name, pipeline.to(device))


# Deployed families whose pipelines apply_plan runs but no subject drives yet, and why.
UNDRIVEN = {"QwenImageTransformer2DModel": "its pipeline needs the prompt masks of a Qwen2.5-VL "
                                           "encoder",
            "WanTransformer3DModel": "a video model: its pipeline returns frames, which the image "
                                     "metrics do not score"}


def check_drivable(name: str) -> Any:
    """The model's registry entry; ModelLoadError, in one line, for a family whose pipeline no
    subject drives (before a search starts its workers or an evaluation loads weights)."""
    entry = resolve(name)
    if entry.model_class in UNDRIVEN:
        raise ModelLoadError(
            f"'{name}' is a {entry.model_class} ({UNDRIVEN[entry.model_class]}): edgediff "
            "evaluates and searches FLUX, SD3 and SDXL pipelines and the shipped models, not this "
            "one yet; apply plans to its pipeline with evaluators.runtime.apply_plan")
    return entry


def _is_digits_flux(source: str) -> bool:
    """A folder laid out like digits-flux: its text encoder is the learned digit prompts."""
    config = Path(source) / "text_encoder" / "config.json"
    if not config.is_file():
        return False
    return json.loads(config.read_text()).get("_class_name") == "DigitsPromptEncoder"


def _embedded_prompts(entry: Any) -> bool:
    """A local pipeline folder of a deployed family (FLUX, SD3, Qwen-Image, Wan, SDXL) or one
    that carries its prompts as embeddings: driven by prompt embeddings."""
    from evaluators.prompt_embeds import EMBEDS_FILE

    folder = Path(entry.source)
    if not (folder / "model_index.json").is_file():
        return False
    return (folder / EMBEDS_FILE).is_file() or entry.model_class in (
        "FluxTransformer2DModel", "SD3Transformer2DModel", "QwenImageTransformer2DModel",
        "WanTransformer3DModel")
