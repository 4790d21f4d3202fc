"""One check that a run belongs to an existing study: the same model, measured the same way."""

from __future__ import annotations

from typing import Any

from storage.errors import StoreError


def check_same_study(study: Any, *, model: str | None = None, spec_hash: str | None = None) -> None:
    """StoreError naming the difference and the fix unless the study (a `StudyInfo` or its row)
    is of `model` and measured under `spec_hash` (each checked where given)."""
    if model is not None and study.model != model:
        raise StoreError(f"study '{study.name}' is of model {study.model}, not {model}: pass "
                         f"--model {study.model} or another --study name")
    if spec_hash is not None and study.spec_hash != spec_hash:
        raise StoreError(
            f"study '{study.name}' was measured under {study.spec_hash[:12]}, this run under "
            f"{spec_hash[:12]} (the evaluation spec, model weights, device or FID features differ; "
            "a study compares plans under one measurement): rerun with the options it was created "
            "with, or pass another --study name")
