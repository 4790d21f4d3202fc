"""Image grids: the PNG report grid and the sample sheet kept with every evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from evaluators.images import PAD, SAMPLE_COUNT, SampleSheet, grid_image, sample_sheet, save_grid


def cells(sheet: SampleSheet) -> list[np.ndarray]:
    """Each image of the sheet, cut out of its PNG."""
    image = sheet.image()
    return [np.asarray(image.crop(sheet.box(k))) for k in range(sheet.count)]


def test_sheet_of_small_images_keeps_the_first_sixteen_at_full_size():
    images = torch.rand(20, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    sheet = sample_sheet(images, conditions=list(range(20)), seeds=list(range(100, 120)))
    assert SAMPLE_COUNT == 16 and sheet.count == 16 and sheet.columns == 8
    assert (sheet.width, sheet.height) == (16, 16)
    assert sheet.captions == tuple(str(k) for k in range(16)) and sheet.seeds == tuple(range(100, 116))
    image = sheet.image()
    assert image.format == "PNG" and image.mode == "L"
    assert image.size == (8 * (16 + PAD) + PAD, 2 * (16 + PAD) + PAD)
    expected = (images[:16] * 255).round().to(torch.uint8)[:, 0].numpy()
    assert all(np.array_equal(cell, want) for cell, want in zip(cells(sheet), expected, strict=True))
    assert np.asarray(image)[0].min() == 255  # the white pad


def test_large_images_are_downscaled_never_upscaled():
    wide = torch.rand(3, 3, 300, 200)  # H 300, W 200
    sheet = sample_sheet(wide, conditions=["a cat", None, 7], seeds=[5, 6, 7], max_side=128)
    assert (sheet.count, sheet.columns) == (3, 3)  # fewer images than columns: one short row
    assert (sheet.width, sheet.height) == (85, 128)
    assert sheet.image().size == (3 * (85 + PAD) + PAD, 128 + 2 * PAD) and sheet.image().mode == "RGB"
    assert sheet.captions == ("a cat", "", "7")
    small = sample_sheet(torch.rand(2, 3, 40, 30), ["", ""], [0, 1], max_side=128)
    assert (small.width, small.height) == (30, 40)
    flat = sample_sheet(torch.full((1, 1, 64, 64), 0.5), [None], [0], max_side=32)
    assert (flat.width, flat.height) == (32, 32)
    assert np.abs(cells(flat)[0].astype(int) - 128).max() <= 1  # LANCZOS keeps a flat image flat


def test_sheet_round_trips_through_json():
    sheet = sample_sheet(torch.rand(4, 3, 8, 8), [1, 2, 3, 4], [0, 1, 2, 3], columns=2)
    data = json.loads(json.dumps(sheet.to_dict()))
    assert isinstance(data["png"], str)
    assert SampleSheet.from_dict(data) == sheet
    assert sheet.box(3) == (PAD + 8 + PAD, PAD + 8 + PAD, 2 * (8 + PAD), 2 * (8 + PAD))


def test_sheet_needs_a_condition_and_a_seed_per_image():
    with pytest.raises(ValueError, match="4 images need 4 conditions and seeds, got 4 and 2"):
        sample_sheet(torch.rand(4, 1, 8, 8), [0, 1, 2, 3], [0, 1])
    with pytest.raises(ValueError, match="images have 2 channels"):
        grid_image(torch.rand(1, 2, 8, 8), 1)


def test_save_grid_writes_the_enlarged_grid(tmp_path):
    images = torch.rand(12, 1, 8, 8)
    path = save_grid(images, tmp_path / "out" / "grid.png", nrow=5, scale=3)
    saved = Image.open(path)
    assert saved.size == (3 * (5 * 9 + 1), 3 * (3 * 9 + 1))
    expected = grid_image(images, 5).resize(saved.size, Image.Resampling.NEAREST)
    assert np.array_equal(np.asarray(saved), np.asarray(expected))
