"""Plans written before a change keep loading: the same JSON text and the same content hash, and
the search spaces and the DeepCache grid still build the same plans from the same points.

`data/legacy_plans.json` was written by `data/make_legacy_plans.py` on the code before the plan
sections moved into `evaluators/techniques/` (full plans, DiTFastAttn greedy plans, Optuna points of
both spaces, DeepCache grids of every schedule, depth-skip, gamma spacing, notes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluators.plan import Plan

LEGACY = json.loads((Path(__file__).parent / "data" / "legacy_plans.json").read_text())


def test_the_fixture_covers_every_kind_of_plan():
    kinds = {e["kind"] for e in LEGACY}
    assert {"full", "space:dit-25-1.5", "space:unet-50-1.5", "deepcache-grid", "template", "hand",
            "greedy"} <= kinds
    sections = {key for e in LEGACY for key in json.loads(e["json"])}
    assert {"deepcache", "depth_skip", "attention", "notes"} <= sections
    schedules = {json.loads(e["json"]).get("deepcache", {}).get("schedule", "uniform") for e in LEGACY}
    assert schedules == {"uniform", "nonuniform", "explicit"}


@pytest.mark.parametrize("index", range(len(LEGACY)))
def test_a_legacy_plan_loads_with_the_same_text_and_hash(index):
    item = LEGACY[index]
    plan = Plan.from_json(item["json"])
    assert plan.to_json() == item["json"]
    assert plan.content_hash() == item["hash"]
    assert Plan.from_dict(plan.to_dict()) == plan


def test_the_spaces_still_build_the_legacy_points(dit, unet):
    from search.space import make_space, model_facts

    facts = {"DiTTransformer2DModel": model_facts(dit), "UNet2DModel": model_facts(unet)}
    points = [e for e in LEGACY if e["kind"].startswith("space:")]
    assert points
    for item in points:
        base = Plan.from_json(item["base"])
        space = make_space(facts[base.model.model_class], base)
        assert space.build(item["params"]).content_hash() == item["hash"], item["kind"]


def test_the_deepcache_grid_still_builds_the_legacy_plans(unet):
    from search.baselines import deepcache_grid
    from search.space import model_facts

    facts = model_facts(unet)
    built: list[str] = []
    for base in (Plan.from_json(e["json"]) for e in LEGACY if e["kind"] == "full"):
        if base.model.model_class == "UNet2DModel":
            built += [plan.content_hash() for _, plan in deepcache_grid(facts, base)]
    legacy = [e["hash"] for e in LEGACY if e["kind"] == "deepcache-grid"]
    assert built == legacy
