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


def check_study_name(name: str) -> None:
    """StoreError unless `name` can name a study: printable, not empty, no '/' or '\\' and not '.'
    or '..' (a study is a path segment of the dashboard's URLs), no space at either end, at most
    200 characters. Studies stored under other names before this check still open by name."""
    if not name.strip():
        raise StoreError("a study name cannot be empty; pass --study NAME")
    if len(name) > 200:
        raise StoreError(f"study name '{name[:40]}...' is {len(name)} characters long; use at most 200")
    if not name.isprintable():
        shown = "".join(c if c.isprintable() else "_" for c in name)
        raise StoreError(f"study name {name!r} holds a control character (a newline, tab, ...); "
                         f"use printable characters, e.g. '{shown}'")
    for bad in ("/", "\\"):
        if bad in name:
            raise StoreError(f"study name '{name}' contains '{bad}'; choose a name without it, "
                             f"e.g. '{name.replace(bad, '-')}'")
    if set(name) == {"."}:
        raise StoreError(f"study name '{name}' is only dots, which a browser reads as a folder; "
                         "choose a name with letters or digits")
    if name != name.strip():
        raise StoreError(f"study name '{name}' starts or ends with a space; use '{name.strip()}'")


def candidate_labels(label: str | None) -> list[str]:
    """The labels of a candidate (see `Store.add_candidate_label`)."""
    return [part for part in (label or "").split(", ") if part]
