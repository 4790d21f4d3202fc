"""Image grids: PNG files for reports, and the small sample sheet kept with every evaluation.

    sheet = sample_sheet(images, conditions=[3, 4, 5], seeds=[0, 1, 2])
    Path("samples.png").write_bytes(sheet.png)

Both are built by `grid_image`: images in [0, 1], shape (N, C, H, W), tiled row by row with a
1-pixel white pad between and around the cells.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

SAMPLE_COUNT = 16  # images kept per evaluation: the first ones, on the same seeds for every plan
PAD = 1  # white pixels between and around the cells of a grid

__all__ = ["PAD", "SAMPLE_COUNT", "SampleSheet", "grid_image", "sample_sheet", "save_grid"]


@dataclass(frozen=True)
class SampleSheet:
    """The first images of an evaluation as one PNG grid.

    Attributes:
        png: the grid, PNG-encoded; `columns` cells wide, cells in image order, `PAD` white pixels
            between and around them (cell k's box is `box(k)`).
        count: images in the grid.
        columns: cells per row (rows: ceil(count / columns)).
        width, height: size of ONE cell in pixels (the images, downscaled if they were large).
        captions: the condition of each image as text (class id or prompt; "" when unconditional).
        seeds: the seed of each image (image k of every plan under a spec uses the same seed).
    """

    png: bytes
    count: int
    columns: int
    width: int
    height: int
    captions: tuple[str, ...]
    seeds: tuple[int, ...]

    def box(self, k: int) -> tuple[int, int, int, int]:
        """Cell k's (left, top, right, bottom) in the PNG, in pixels."""
        row, col = divmod(k, self.columns)
        left, top = PAD + col * (self.width + PAD), PAD + row * (self.height + PAD)
        return left, top, left + self.width, top + self.height

    def image(self) -> Image.Image:
        """The grid as a Pillow image."""
        return Image.open(io.BytesIO(self.png))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the PNG as base64 text, tuples as lists."""
        return {"png": base64.b64encode(self.png).decode("ascii"), "count": self.count,
                "columns": self.columns, "width": self.width, "height": self.height,
                "captions": list(self.captions), "seeds": list(self.seeds)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleSheet:
        return cls(png=base64.b64decode(data["png"]), count=int(data["count"]),
                   columns=int(data["columns"]), width=int(data["width"]), height=int(data["height"]),
                   captions=tuple(str(c) for c in data["captions"]),
                   seeds=tuple(int(s) for s in data["seeds"]))


def grid_image(images: torch.Tensor, columns: int, max_side: int | None = None) -> Image.Image:
    """Images in [0, 1], shape (N, C, H, W) with C = 1 or 3, as one grid `columns` wide ("L" or
    "RGB"); with `max_side`, each image is first downscaled (LANCZOS) so that its longer side is at
    most `max_side` pixels (never upscaled)."""
    n, c, h, w = images.shape
    if c not in (1, 3):
        raise ValueError(f"images have {c} channels; a grid takes 1 (grey) or 3 (RGB)")
    width, height = _cell_size(w, h, max_side)
    rows = -(-n // columns)
    canvas = Image.new("L" if c == 1 else "RGB", (columns * (width + PAD) + PAD, rows * (height + PAD) + PAD),
                       "white")
    for k, tile in enumerate(_tiles(images)):
        if tile.size != (width, height):
            tile = tile.resize((width, height), Image.Resampling.LANCZOS)
        row, col = divmod(k, columns)
        canvas.paste(tile, (PAD + col * (width + PAD), PAD + row * (height + PAD)))
    return canvas


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 10, scale: int = 4) -> Path:
    """Save images in [0, 1], shape (N, C, H, W), as a grid `nrow` wide, pixels enlarged `scale`×."""
    img = grid_image(images, nrow)
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def sample_sheet(images: torch.Tensor, conditions: Sequence[object], seeds: Sequence[int],
                 count: int = SAMPLE_COUNT, columns: int = 8, max_side: int = 128) -> SampleSheet:
    """The first min(count, N) images in [0, 1], shape (N, C, H, W), as a PNG grid at most `columns`
    wide, each downscaled so that its longer side is at most `max_side` pixels (never upscaled).
    `conditions` (class ids, prompts or None) and `seeds` belong to the images, in order."""
    n = min(count, images.shape[0])
    if n < 1:
        raise ValueError("a sample sheet needs at least one image")
    if len(conditions) < n or len(seeds) < n:
        raise ValueError(f"{n} images need {n} conditions and seeds, got {len(conditions)} and {len(seeds)}")
    columns = max(1, min(columns, n))
    width, height = _cell_size(images.shape[-1], images.shape[-2], max_side)
    buffer = io.BytesIO()
    grid_image(images[:n], columns, max_side).save(buffer, format="PNG")
    captions = tuple("" if c is None else str(c) for c in conditions[:n])
    return SampleSheet(png=buffer.getvalue(), count=n, columns=columns, width=width, height=height,
                       captions=captions, seeds=tuple(int(s) for s in seeds[:n]))


def _cell_size(w: int, h: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) of an image after downscaling its longer side to `max_side` (if larger)."""
    if max_side is None or max(w, h) <= max_side:
        return w, h
    scale = max_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _tiles(images: torch.Tensor) -> list[Image.Image]:
    """Each image as an 8-bit Pillow image (2-D -> "L", H×W×3 -> "RGB")."""
    array = (images.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8)
    if images.shape[1] == 1:
        return [Image.fromarray(a[0].numpy()) for a in array]
    return [Image.fromarray(np.ascontiguousarray(a.permute(1, 2, 0).numpy())) for a in array]
