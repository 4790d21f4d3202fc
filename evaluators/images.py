"""Image grids as PNG files."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 10, scale: int = 4) -> Path:
    """Save images in [0, 1], shape (N, C, H, W), as a grid `nrow` wide, pixels enlarged `scale`×."""
    n, c, h, w = images.shape
    rows = (n + nrow - 1) // nrow
    pad = 1
    grid = torch.ones(c, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for k in range(n):
        r, col = divmod(k, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, y : y + h, x : x + w] = images[k]
    array = (grid.clamp(0, 1) * 255).round().to(torch.uint8)
    pixels = array[0].numpy() if c == 1 else array.permute(1, 2, 0).numpy()
    img = Image.fromarray(pixels)  # 2-D uint8 -> "L", H×W×3 -> "RGB"
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
