"""How well a multi-fidelity search's cheap rungs predicted its final numbers (no torch).

A search with rungs (`search.rungs`) stores each plan's lower-rung measurements as evaluations at
stage "rung-<images>" under the study's spec hash, beside the final "full" evaluation. For each
lower rung, and for the final measurement, `rung_correlations` gives Spearman's rank correlation
with the final measurement and with each held-out confirmation of the study (`<study>-confirm-<N>`,
written by `export --confirm-images N`), over the plans measured at both: ρ near 1 means the rung
ranks plans as the final measurement does, so successive halving dropped the right ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from sqlalchemy import select

from storage import rows
from storage.models import Evaluation, Study
from storage.pareto import Point
from storage.records import RUNG_PREFIX, StudyRef, is_rung_stage, study_name

CONFIRM_INFIX = "-confirm-"  # a confirmation study's name: <study>-confirm-<images>


@dataclass(frozen=True)
class RungCorrelation:
    """One rung against one later measurement: `stage` ("rung-8" or "full") measured on `images`
    images with the metric `objective`; `against` ("full", or a confirmation study's name) on
    `against_images`; `plans` measured at both; `rho` (None below 3 plans or when either side
    ranks every plan alike)."""

    stage: str
    images: int
    objective: str
    against: str
    against_images: int
    plans: int
    rho: float | None


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (scipy, ties at their average rank); None when undefined."""
    if len(x) < 3:
        return None
    from scipy.stats import spearmanr

    rho = float(spearmanr(x, y).statistic)
    return rho if math.isfinite(rho) else None


def rung_stages(store: object, study: StudyRef) -> list[str]:
    """The study's lower-rung stages, fewest images first."""
    with store._reading() as session:  # type: ignore[attr-defined]
        found = session.scalars(rows.evaluated_join(select(Evaluation.stage),
                                                    study_name(study)).distinct()).all()
    return sorted((s for s in found if is_rung_stage(s)), key=lambda s: int(s[len(RUNG_PREFIX):]))


def confirmation_studies(store: object, study: StudyRef) -> list[str]:
    """The names of the study's confirmation studies, fewest images first."""
    prefix = study_name(study) + CONFIRM_INFIX
    with store._reading() as session:  # type: ignore[attr-defined]
        names = session.scalars(select(Study.name).where(
            Study.name.startswith(prefix, autoescape=True))).all()
    names = [n for n in names if n[len(prefix):].isdigit()]
    return sorted(names, key=lambda n: int(n[len(prefix):]))


def correlations(store: object, study: StudyRef) -> list[RungCorrelation]:
    """Each lower rung against the final measurement and each confirmation; the final
    measurement against each confirmation (see the module docstring). [] for a study without
    rungs or confirmations."""
    points = store.points  # type: ignore[attr-defined]
    stages = rung_stages(store, study)
    confirms = confirmation_studies(store, study)
    if not stages and not confirms:
        return []
    spec = json.loads(store.get_study(study).spec_json)  # type: ignore[attr-defined]
    full_images = int(spec.get("num_images", 0))
    final = ("full", full_images, points(study))
    lower = [(stage, int(stage[len(RUNG_PREFIX):]), points(study, stage=stage)) for stage in stages]
    prefix = len(study_name(study) + CONFIRM_INFIX)
    targets = [final] + [(name, int(name[prefix:]), points(name)) for name in confirms]
    return [_pair(rung, target) for rung in [*lower, final] for target in targets
            if target[0] != rung[0] and rung[2]]


def _pair(rung: tuple[str, int, list[Point]], target: tuple[str, int, list[Point]]) -> RungCorrelation:
    later = {p.plan_hash: p.quality for p in target[2] if _finite(p.quality)}
    both = [(p.quality, later[p.plan_hash]) for p in rung[2]
            if _finite(p.quality) and p.plan_hash in later]
    rho = spearman([a for a, _ in both], [b for _, b in both])
    return RungCorrelation(rung[0], rung[1], rung[2][0].objective, target[0], target[1], len(both), rho)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
