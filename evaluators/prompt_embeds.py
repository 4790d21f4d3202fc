"""Prompts as precomputed text embeddings, and the subject that generates from them.

Text encoders run once per prompt and are not part of any plan, so a pipeline folder may carry
its prompts already encoded (`prompt_embeds.safetensors`: per prompt its sequence embedding
`embeds.<i>` and, for pipelines that take one, its pooled embedding `pooled.<i>`; the prompt texts
in the file's metadata). A folder without text encoders (the tiny test pipelines, or a large
pipeline whose encoders were run elsewhere) generates only those prompts; a folder with text
encoders encodes any prompt once with the pipeline's own `encode_prompt` and keeps it.
The empty prompt "" is the negative prompt where the pipeline needs one (CFG).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from evaluators.executed import ExecutionTrace
from evaluators.plan import Plan
from evaluators.subjects import Condition, Subject
from evaluators.zoo import ModelLoadError

EMBEDS_FILE = "prompt_embeds.safetensors"


class PromptEmbeddings:
    """Prompt text -> (sequence embedding (L, D), pooled embedding (D,) or None)."""

    def __init__(self, table: dict[str, tuple[torch.Tensor, torch.Tensor | None]],
                 size: tuple[int, int] | None = None) -> None:
        self.table = table
        self.size = size  # (height, width) the pipeline generates at, where the folder says

    @classmethod
    def load(cls, folder: str | Path) -> PromptEmbeddings | None:
        path = Path(folder) / EMBEDS_FILE
        if not path.is_file():
            return None
        from safetensors import safe_open

        table: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            prompts = json.loads(meta.get("prompts", "[]"))
            size = tuple(json.loads(meta["size"])) if "size" in meta else None
            keys = set(f.keys())
            for i, prompt in enumerate(prompts):
                pooled = f.get_tensor(f"pooled.{i}") if f"pooled.{i}" in keys else None
                table[prompt] = (f.get_tensor(f"embeds.{i}"), pooled)
        return cls(table, size)  # type: ignore[arg-type]

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        tensors: dict[str, torch.Tensor] = {}
        for i, (embeds, pooled) in enumerate(self.table.values()):
            tensors[f"embeds.{i}"] = embeds.contiguous()
            if pooled is not None:
                tensors[f"pooled.{i}"] = pooled.contiguous()
        path = Path(folder) / EMBEDS_FILE
        meta = {"prompts": json.dumps(list(self.table))}
        if self.size is not None:
            meta["size"] = json.dumps(list(self.size))
        save_file(tensors, str(path), metadata=meta)
        return path

    def get(self, prompt: str, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        if prompt not in self.table:
            known = [p for p in self.table if p]
            raise ModelLoadError(
                f"'{name}' has no text encoder and no embedding of the prompt {prompt!r}: use one "
                f"of its {len(known)} encoded prompts ({', '.join(map(repr, known[:3]))}"
                f"{', ...' if len(known) > 3 else ''}) or a folder with text encoders")
        return self.table[prompt]


class EmbeddedPromptSubject(Subject):
    """A text-to-image diffusers pipeline driven by prompt embeddings (FLUX, SD3, Qwen-Image,
    SDXL); the denoiser alone runs under the plan."""

    conditioning = "prompt"

    def __init__(self, name: str, pipeline: Any, embeddings: PromptEmbeddings | None,
                 height: int | None = None, width: int | None = None) -> None:
        from evaluators.runtime import denoiser_of

        self.name, self.pipeline, self.embeddings = name, pipeline, embeddings
        self.denoiser = denoiser_of(pipeline)
        if height is None and embeddings is not None and embeddings.size is not None:
            height, width = embeddings.size
        self.height, self.width = height, width
        self._encoded: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self.executed: dict[str, tuple[int, int, list[int]]] = {}  # plan hash -> (MACs, images,
        # MACs per call) of the generations a run-time cache decided

    @property
    def geometry(self) -> Any:
        """The generation's shape for meta counts (`evaluators.calls.Geometry`)."""
        from evaluators.calls import Geometry

        scale = int(getattr(self.pipeline, "vae_scale_factor", 8))
        height = self.height or int(self.pipeline.default_sample_size * scale)
        width = self.width or height
        tokens = 77
        if self.embeddings is not None and self.embeddings.table:
            tokens = int(next(iter(self.embeddings.table.values()))[0].shape[0])
        return Geometry(height, width, 1, tokens, scale)
    def embed(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The prompt's embeddings: from the folder's file, else encoded once by the pipeline."""
        if prompt in self._encoded:
            return self._encoded[prompt]
        if self.embeddings is not None and prompt in self.embeddings.table:
            out = self.embeddings.table[prompt]
        elif getattr(self.pipeline, "text_encoder", None) is not None:
            with torch.no_grad():
                encoded = self.pipeline.encode_prompt(prompt=prompt, prompt_2=None)
            out = (encoded[0][0], encoded[1][0] if len(encoded) > 1 and encoded[1] is not None
                   and encoded[1].ndim == 2 else None)
        else:
            out = (self.embeddings or PromptEmbeddings({})).get(prompt, self.name)
        self._encoded[prompt] = out
        return out

    def generate_batch(self, plan: Plan, seeds: Sequence[int], conditions: Sequence[Condition],
                       on_step: Callable[[], None] | None = None) -> torch.Tensor:
        from evaluators.runtime import apply_plan

        device = self.denoiser.device
        dtype = self.denoiser.dtype
        pairs = [self.embed(str(c)) for c in conditions]
        kwargs: dict[str, Any] = {
            "prompt_embeds": torch.stack([e for e, _ in pairs]).to(device, dtype),
            "num_inference_steps": plan.num_steps, "output_type": "np",
            "generator": [torch.Generator(device).manual_seed(s) for s in seeds],
            "guidance_scale": plan.sampling.guidance_scale,
        }
        if pairs[0][1] is not None:
            kwargs["pooled_prompt_embeds"] = torch.stack([p for _, p in pairs]).to(device, dtype)
        if self.height is not None:
            kwargs.update(height=self.height, width=self.width)
        negative = self.negative_prompt is not None and _accepts(self.pipeline,
                                                                   "negative_prompt_embeds")
        if plan.sampling.guidance_scale > 1 and (negative or _takes_negative(self.pipeline)):
            neg, neg_pooled = self.embed(self.negative_prompt or "")
            kwargs["negative_prompt_embeds"] = neg.expand(len(seeds), *neg.shape).to(device, dtype)
            if neg_pooled is not None:
                kwargs["negative_pooled_prompt_embeds"] = neg_pooled.expand(
                    len(seeds), *neg_pooled.shape).to(device, dtype)
        if on_step is not None:
            kwargs["callback_on_step_end"] = lambda *a, **k: (on_step(), a[-1])[1]
        dynamic = any(getattr(s, "input_dependent", False) for s in plan.sections)
        trace = ExecutionTrace(self.denoiser) if dynamic else None
        try:
            with torch.no_grad(), apply_plan(self.pipeline, plan):
                images = self.pipeline(**kwargs).images
        finally:
            if trace is not None:
                trace.remove()
        if trace is not None:
            self._record(plan, trace, len(seeds))
        images = torch.as_tensor(images)
        return images.permute(0, 3, 1, 2).float().clamp(0.0, 1.0)


    def _record(self, plan: Plan, trace: Any, images: int) -> None:
        from evaluators.executed import unit_macs

        per_sample = unit_macs(self.denoiser, self.geometry)
        macs, done, per_call = self.executed.get(plan.content_hash(), (0, 0, []))
        calls = trace.macs_per_call(per_sample)
        self.executed[plan.content_hash()] = (macs + sum(calls), done + images, per_call + calls)


def _accepts(pipeline: Any, name: str) -> bool:
    """Whether the pipeline's call takes the keyword `name`."""
    import inspect

    return name in inspect.signature(type(pipeline).__call__).parameters


def _takes_negative(pipeline: Any) -> bool:
    """Pipelines whose CFG needs negative embeddings when there is no text encoder (SDXL makes
    zeros itself; FLUX.1-dev is guidance-distilled and takes none)."""
    return type(pipeline).__name__ in ("StableDiffusion3Pipeline",)


def load_embedded_pipeline(folder: str | Path, device: str | torch.device = "cpu") -> Any:
    """A pipeline folder whose text encoders or tokenizers may be absent (`[null, null]` in
    `model_index.json`): those components load as None instead of failing."""
    from diffusers import DiffusionPipeline

    index = json.loads((Path(folder) / "model_index.json").read_text())
    absent = {k: None for k, v in index.items()
              if not k.startswith("_") and isinstance(v, list) and v[0] is None}
    return DiffusionPipeline.from_pretrained(str(folder), **absent).to(device)
