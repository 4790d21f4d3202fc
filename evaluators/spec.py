"""The evaluation spec: what a candidate plan is measured on (torch-free, like the plan).

A spec fixes the images (count, seeds, classes or prompts), the uncompressed model's sampling (the
reference every plan is compared with), the reference image set and the FID feature space, the
multi-fidelity stages and the batch size. Its `content_hash` is part of an evaluation's identity
(`evaluators.evaluate.Evaluator.spec_hash` adds the model's weights, the device and the feature
network): two evaluations of the same plan with the same identity are the same evaluation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from evaluators.defaults import DEFAULT_GUIDANCE, DEFAULT_STEPS
from evaluators.errors import EvaluatorError
from evaluators.plan import MAX_GUIDANCE, MAX_STEPS

FEATURES = ("digits", "inception")
QUALITY = ("fid", "kid", "fidelity")  # the quality objective (evaluators.metrics.QUALITY_OBJECTIVES)
# Fields added after specs were first stored: left out of the JSON (and so the hash) at their
# default, so every earlier spec keeps its hash.
_LATER_DEFAULTS = {"quality": "fid", "clip_model": None, "dtype": "fp32", "height": None,
                   "width": None, "scheduler": None, "negative_prompt": None,
                   "vae_decode": "batch", "latency_repeats": 0}
DTYPES = ("fp32", "fp16", "bf16")  # torch.float32, float16, bfloat16 (evaluators.settings)
VAE_DECODES = ("batch", "slicing", "tiling", "slicing+tiling")  # diffusers' AutoencoderKL modes
MAX_SIDE = 8192  # pixels per side of --height / --width
MAX_REPEATS = 100
DIGITS_REFERENCE = "digits"
STAGES = ("screen", "full")
MAX_SEED = 2**32 - 1  # image k's seed is seed + k: far below torch's 2**64 limit


class SpecError(EvaluatorError):
    """An evaluation spec is out of range; the message names the field and the fix."""


@dataclass(frozen=True)
class EvalSpec:
    """How candidate plans are evaluated.

    Attributes:
        num_images: images of the full pass; image k uses seed `seed + k` and class
            `classes[k % len(classes)]` (or prompt `prompts[k % len(prompts)]`).
        seed: seed of image 0.
        classes: class labels to cycle through (class-conditional models); None cycles
            0..num_classes-1.
        prompts: prompts to cycle through (text-to-image pipelines); None for class models.
        num_inference_steps: steps of the uncompressed model (the reference every plan is
            compared with; a plan brings its own step count).
        guidance_scale: CFG scale of the uncompressed model (1.0 = off).
        reference: the real image set FID is measured against: "digits" (all 1,797 scikit-learn
            digits) or a folder of images.
        feature: FID feature space: "digits" (the shipped classifier's penultimate layer) or
            "inception" (InceptionV3 pool features, for real models).
        screen_images: images of the cheap first pass (fidelity only, no FID); 0 = no first pass.
        screen_min_psnr: a plan whose first pass reads below this PSNR (dB) against the
            uncompressed model is not given the full pass; None = every plan gets it.
        batch_size: images denoised together: the images do not depend on it, latency and
            MACs per generation do.
        quality: the quality objective minimised with the MACs: "fid" or "kid" (against the
            reference set, in the `feature` space) or "fidelity" (1 - SSIM against the
            uncompressed model on the same seeds; needs no reference set).
        clip_model: a local folder holding a CLIP model (save_pretrained layout): text-to-image
            evaluations then also measure the CLIP score against their prompts.
        dtype: the weights' and activations' precision: "fp32", "fp16" or "bf16".
        height, width: image size in pixels, for pipelines that take one (None: the model's own).
        scheduler: a diffusers scheduler class name (e.g. "DPMSolverMultistepScheduler") built
            with `from_config` from the model's own scheduler; None keeps the model's.
        negative_prompt: the prompt CFG's unconditional half uses (text-to-image only; None: "").
        vae_decode: how the VAE decodes a batch: "batch" (all at once), "slicing" (one image at
            a time), "tiling" (in overlapping tiles, for large images) or "slicing+tiling".
        latency_repeats: after a plan's images, time this many further generations of one batch
            (the plan is warm by then): the latency is their median per image, their spread is
            stored with it; 0 = the latency of the pass that made the images.
    """

    num_images: int = 200
    seed: int = 0
    classes: tuple[int, ...] | None = None
    prompts: tuple[str, ...] | None = None
    num_inference_steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE
    reference: str = DIGITS_REFERENCE
    feature: str = "digits"
    screen_images: int = 0
    screen_min_psnr: float | None = None
    batch_size: int = 100
    quality: str = "fid"
    clip_model: str | None = None
    dtype: str = "fp32"
    height: int | None = None
    width: int | None = None
    scheduler: str | None = None
    negative_prompt: str | None = None
    vae_decode: str = "batch"
    latency_repeats: int = 0

    def __post_init__(self) -> None:
        def coerce(name: str, kind: type) -> None:
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(kind(v) for v in value))

        coerce("classes", int)
        coerce("prompts", str)
        object.__setattr__(self, "guidance_scale", float(self.guidance_scale))
        self._check()

    def _check(self) -> None:
        if self.num_images < 2:
            raise _fail("num_images", f"{self.num_images} is too few", "FID needs at least 2 images")
        for name in ("num_inference_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise _fail(name, f"{getattr(self, name)} is out of range", "give an integer >= 1")
        if not 1.0 <= self.guidance_scale <= MAX_GUIDANCE:  # NaN fails too
            raise _fail("guidance_scale", f"{self.guidance_scale} is out of range",
                        f"use 1.0 (no guidance) up to {MAX_GUIDANCE:g}, the plans' limit")
        if self.num_inference_steps > MAX_STEPS:
            raise _fail("num_inference_steps", f"{self.num_inference_steps} is out of range",
                        f"use 1 up to {MAX_STEPS}, the plans' limit")
        if not 0 <= self.seed <= MAX_SEED:
            raise _fail("seed", f"{self.seed} is out of range", f"use 0 up to {MAX_SEED}")
        if self.feature not in FEATURES:
            raise _fail("feature", f"unknown feature '{self.feature}'", f"use one of {', '.join(FEATURES)}")
        if self.quality not in QUALITY:
            raise _fail("quality", f"unknown quality objective '{self.quality}'",
                        f"use one of {', '.join(QUALITY)}")
        if not 0 <= self.screen_images <= self.num_images:
            raise _fail("screen_images", f"{self.screen_images} is out of range",
                        f"give 0 (no first pass) up to num_images ({self.num_images})")
        if self.screen_min_psnr is not None and self.screen_images == 0:
            raise _fail("screen_min_psnr", "is set but there is no first pass",
                        "set screen_images > 0 as well")
        if self.classes is not None and (not self.classes or min(self.classes) < 0):
            raise _fail("classes", "must be a non-empty list of labels >= 0", "or leave it out")
        if self.prompts is not None and not self.prompts:
            raise _fail("prompts", "is empty", "give at least one prompt or leave it out")
        if self.classes is not None and self.prompts is not None:
            raise _fail("classes", "classes and prompts are both set", "a model takes one or the other")
        self._check_runtime()

    def _check_runtime(self) -> None:
        """The GPU-scale settings (precision, size, scheduler, negative prompt, VAE decoding)."""
        if self.dtype not in DTYPES:
            raise _fail("dtype", f"unknown dtype '{self.dtype}'", f"use one of {', '.join(DTYPES)}")
        if self.vae_decode not in VAE_DECODES:
            raise _fail("vae_decode", f"unknown mode '{self.vae_decode}'",
                        f"use one of {', '.join(VAE_DECODES)}")
        if (self.height is None) != (self.width is None):
            raise _fail("height", "height and width go together", "give both or neither")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value is not None and not (8 <= value <= MAX_SIDE and value % 8 == 0):
                raise _fail(name, f"{value} is out of range",
                            f"give a multiple of 8 from 8 to {MAX_SIDE} pixels")
        if self.scheduler is not None and not (self.scheduler.isidentifier()
                                               and self.scheduler.endswith("Scheduler")):
            raise _fail("scheduler", f"'{self.scheduler}' is not a scheduler class name",
                        "give a diffusers class such as DPMSolverMultistepScheduler")
        if self.negative_prompt is not None and self.prompts is None:
            raise _fail("negative_prompt", "is set but there are no prompts",
                        "a negative prompt is for text-to-image models (give prompts too)")
        if not 0 <= self.latency_repeats <= MAX_REPEATS:
            raise _fail("latency_repeats", f"{self.latency_repeats} is out of range",
                        f"give 0 (time the pass itself) up to {MAX_REPEATS}")

    # --- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name, default in _LATER_DEFAULTS.items():
            if out[name] == default:
                del out[name]
        for name in ("classes", "prompts"):
            if out[name] is not None:
                out[name] = list(out[name])
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def content_hash(self) -> str:
        """Hash of every field (the batch size changes latency, though not the images)."""
        body = self.to_dict()
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalSpec:
        if not isinstance(data, Mapping):
            raise SpecError(f"an evaluation spec must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise _fail(unknown[0], "unknown field", f"known fields are {', '.join(sorted(known))}")
        try:
            return cls(**dict(data))
        except (TypeError, ValueError) as err:
            raise SpecError(f"spec: {err}; see evaluators/spec.py for the fields") from err

    @classmethod
    def from_json(cls, text: str) -> EvalSpec:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as err:
            raise SpecError(f"spec is not valid JSON ({err.msg}); write it with EvalSpec.to_json") from err

    # --- what to generate ---------------------------------------------------------------------
    def seeds(self, count: int) -> list[int]:
        return list(range(self.seed, self.seed + count))

    def labels(self, count: int, num_classes: int) -> list[int]:
        classes = self.classes or tuple(range(num_classes))
        return [classes[k % len(classes)] for k in range(count)]

    def prompt_list(self, count: int) -> list[str]:
        assert self.prompts is not None
        return [self.prompts[k % len(self.prompts)] for k in range(count)]

    def stage_images(self, stage: str) -> int:
        if stage not in STAGES:
            raise _fail("stage", f"unknown stage '{stage}'", f"use one of {', '.join(STAGES)}")
        if stage == "screen":
            if not self.screen_images:
                raise _fail("screen_images", "is 0, so there is no first pass",
                            "set screen_images > 0 to screen plans")
            return self.screen_images
        return self.num_images


def _fail(field_name: str, problem: str, fix: str) -> SpecError:
    return SpecError(f"spec.{field_name}: {problem}; {fix}")
