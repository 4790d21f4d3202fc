"""The user's entry point: `import edgediff`, then `edgediff.apply_plan(pipe, "plan.json")`,
`edgediff.Plan`, `edgediff.count_macs`, without Ray, Optuna or SQLAlchemy being imported."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import edgediff
from evaluators.plan import AttentionPlan, PlanError, full_plan
from evaluators.runtime import model_ref
from evaluators.runtime.attention import self_attention_layers

ROOT = Path(__file__).resolve().parents[1]


def test_the_entry_point_imports_no_search_or_store_machinery():
    code = ("import sys, edgediff\n"
            "names = (edgediff.Plan, edgediff.apply_plan, edgediff.count_macs)\n"
            "heavy = [m for m in ('ray', 'optuna', 'sqlalchemy', 'alembic') if m in sys.modules]\n"
            "sys.exit(' '.join(heavy) or None)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_apply_plan_and_count_macs_take_a_path_or_a_plan(dit, tmp_path):
    steps = 4
    base = full_plan(model_ref(dit, "digits-dit"), steps, 1.0, len(self_attention_layers(dit)))
    rows = tuple(("full",) + ("ast",) * (steps - 1) for _ in base.attention.methods)
    plan = replace(base, attention=AttentionPlan(rows))
    path = plan.save(tmp_path / "plan.json")
    assert edgediff.Plan.load(path) == plan
    by_path = edgediff.count_macs(dit, path, num_inference_steps=steps)
    assert by_path.per_image == edgediff.count_macs(dit, plan, num_inference_steps=steps).per_image
    assert by_path.per_image < edgediff.count_macs(dit, num_inference_steps=steps).per_image
    with edgediff.apply_plan(dit, str(path)) as applied:
        assert applied.plan == plan and applied.model is dit
    edgediff.apply_plan(dit, plan).remove()  # the first one was removed: a second one installs
    with pytest.raises(PlanError, match="cannot read it"):
        edgediff.apply_plan(dit, tmp_path / "missing.json")


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'apply'"):
        edgediff.apply  # noqa: B018
    assert {"Plan", "apply_plan", "count_macs"} <= set(dir(edgediff))
