"""CLIP score of text-to-image samples against their prompts (torchmetrics `CLIPScore`), with the
CLIP weights from a local folder (a `save_pretrained` copy of e.g. openai/clip-vit-base-patch16):
evaluation machines are often offline, so nothing is downloaded here.

    scorer = ClipScorer("/models/clip-vit-base-patch16")
    scores = scorer.per_image(images, prompts)      # (N,), 100 x cosine similarity; higher is better
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from evaluators.errors import EvaluatorError

_NEEDED = ("config.json",)
_FIX = ("copy a CLIP model saved with save_pretrained (config.json, the weights, the tokenizer and "
        "preprocessor files; e.g. openai/clip-vit-base-patch16) into that folder, or give another "
        "--clip-model folder")


class ClipScorer:
    """Per-image CLIP scores with torchmetrics' `CLIPScore` on a CLIP model from `path`."""

    def __init__(self, path: str | Path) -> None:
        folder = Path(path)
        if not folder.is_dir():
            raise EvaluatorError(f"CLIP model folder '{folder}' does not exist: {_FIX}")
        missing = [name for name in _NEEDED if not (folder / name).is_file()]
        if missing:
            raise EvaluatorError(f"CLIP model folder '{folder}' has no {missing[0]}: {_FIX}")
        try:
            from torchmetrics.multimodal.clip_score import CLIPScore
            from transformers import CLIPModel, CLIPProcessor

            def load() -> tuple[CLIPModel, CLIPProcessor]:
                return (CLIPModel.from_pretrained(folder, local_files_only=True),
                        CLIPProcessor.from_pretrained(folder, local_files_only=True))

            self.metric = CLIPScore(model_name_or_path=load)
        except Exception as err:  # noqa: BLE001 - incomplete or damaged model files
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise EvaluatorError(f"cannot load the CLIP model in '{folder}' ({first}): {_FIX}") from None

    @torch.no_grad()
    def per_image(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """CLIP score of each image in [0, 1] (N, 3, H, W) against its prompt, shape (N,)."""
        if len(prompts) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images need {images.shape[0]} prompts, got {len(prompts)}")
        pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8)
        if pixels.shape[1] == 1:
            pixels = pixels.expand(-1, 3, -1, -1)
        scores = []
        for k in range(pixels.shape[0]):  # one at a time: the metric returns the mean of its batch
            self.metric.reset()
            self.metric.update(pixels[k:k + 1], [prompts[k]])
            scores.append(float(self.metric.compute()))
        return torch.tensor(scores, dtype=torch.float64)
