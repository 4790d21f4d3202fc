"""The uncompressed model's runs (`results.Reference`), keyed by measurement hash: kept in memory
for the process and, with a cache folder, in a safetensors file that later processes (search
workers) reuse, together with the FID reference statistics.

`clear()` forgets the in-memory runs (a test that wants a fresh process calls it); the files stay.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import replace
from pathlib import Path

from evaluators.results import Measurement, Reference

__all__ = ["cache_path", "clear", "load", "recall", "remember", "save"]

# measurement hash -> the uncompressed model's run, for this process
_RUNS: dict[str, Reference] = {}


def recall(spec_hash: str) -> Reference | None:
    """The run made in this process under `spec_hash`, if any."""
    return _RUNS.get(spec_hash)


def remember(ref: Reference) -> Reference:
    """Keep `ref` for the process (a run already kept under its hash wins); returns the kept one."""
    return _RUNS.setdefault(ref.measurement.spec_hash, ref)


def clear() -> None:
    """Forget every run kept in memory (cache files are left alone)."""
    _RUNS.clear()


def cache_path(cache_dir: Path | None, model: str, spec_hash: str) -> Path | None:
    """Where the run of `model` under `spec_hash` is cached (None without a cache folder)."""
    if cache_dir is None:
        return None
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", model).strip("_")[:40]
    return cache_dir / f"reference-{slug}-{spec_hash[:24]}.safetensors"


def load(path: Path | None, *, model: str, spec_hash: str, plan_hash: str,
         num_images: int) -> Reference | None:
    """The cached run at `path` if it is the one asked for (model, measurement hash, uncompressed
    plan, image count); None when there is none, or it is another's, or it is damaged."""
    if path is None or not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        measurement = Measurement.from_dict(json.loads(meta["evaluation"]))
    except Exception:  # noqa: BLE001 - a damaged cache file is regenerated, not trusted
        return None
    images = tensors.pop("images")
    expected = (model, spec_hash, plan_hash, num_images)
    found = (measurement.model, measurement.spec_hash, measurement.plan_hash, images.shape[0])
    return Reference(images, measurement, tensors) if found == expected else None


def save(path: Path | None, ref: Reference) -> None:
    """Write `ref` to `path` atomically (nothing without a path)."""
    if path is None:
        return
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"images": ref.images.contiguous(), **ref.fid_state}
    # without the sample sheet: the evaluator draws it again from the images in the file
    meta = {"evaluation": json.dumps(replace(ref.measurement, samples=None).to_dict())}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
