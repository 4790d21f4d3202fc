"""The Optuna search spaces and the DeepCache baseline grid on the shipped models: every point
builds a valid plan that fits and runs, points and plans map back and forth, the grid is exactly
representable."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import FixedTrial

from evaluators.plan import SHARES_CFG, WINDOW_METHODS, Plan, full_plan
from evaluators.runtime import apply_plan, check_plan_fits, model_ref
from evaluators.runtime.unet import unet_layout
from evaluators.subjects import load_subject
from evaluators.templates import uniform_plan
from search.baselines import deepcache_grid, grid_branches, spread
from search.space import (
    CENTERS,
    INTERVALS,
    TransformerSpace,
    UNetSpace,
    attention_row,
    make_space,
    model_facts,
    segment_ranges,
    skip_levels,
    step_choices,
)

STEPS, GUIDANCE = 50, 1.5
ASKS = 200

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def dit_space(dit) -> TransformerSpace:
    facts = model_facts(dit)
    base = full_plan(model_ref(dit, "digits-dit"), STEPS, GUIDANCE, facts["num_layers"])
    return make_space(facts, base)


@pytest.fixture(scope="module")
def unet_space(unet) -> UNetSpace:
    return make_space(model_facts(unet), full_plan(model_ref(unet, "digits-unet"), STEPS, GUIDANCE))


def random_plans(space, seed: int = 0) -> list[Plan]:
    study = optuna.create_study(directions=["minimize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    return [space.suggest(study.ask()) for _ in range(ASKS)]


def round_trip(space, plan: Plan) -> Plan:
    return space.suggest(FixedTrial(space.params_of(plan)))


def reuses_follow_computed_steps(row) -> bool:
    return row[0] != "ast" and not any(row[t - 1] == row[t] == "ast" for t in range(1, len(row)))


# --- facts and the step structure ---------------------------------------------------------------

def test_model_facts_of_the_shipped_models(dit, unet):
    assert model_facts(dit) == {"kind": "transformer", "num_layers": 8, "num_tokens": 256,
                                "groups": ["attention"]}
    facts = model_facts(unet)
    assert facts["kind"] == "unet" and facts["num_branches"] == 9 and facts["max_level"] == 2
    derived = skip_levels({"num_branches": 9, "max_level": 2})
    assert derived == facts["skip_levels"] == [s.level for s in unet_layout(unet).skips]
    # Stable Diffusion / DDPM CIFAR-10 shape: 4 levels, 2 resnets per block, 12 skips
    assert skip_levels({"num_branches": 12, "max_level": 3}) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_step_choices():
    assert step_choices(50) == (50, 40, 30, 20)
    assert step_choices(8) == (8, 6, 5)  # 0.4 * 8 rounds to 3 < 4
    assert step_choices(3) == (3,)


@pytest.mark.parametrize("steps", range(4, 61))
def test_segments_cover_the_steps_after_step_0_exactly(steps):
    segs = segment_ranges(steps)
    assert [t for seg in segs for t in seg] == list(range(1, steps))
    lengths = [len(seg) for seg in segs]
    assert max(lengths) - min(lengths) <= 1


def test_ast_alternates_within_its_segment():
    # 40 steps: segments 1-9, 10-19, 20-29, 30-39
    row = attention_row(["ast", "ast", "wars", "ast"], 40)
    assert row[0] == "full"
    assert row[1:10] == ("ast", "full") * 4 + ("ast",)  # 1st, 3rd, ... steps reuse
    assert row[10:20] == ("full", "ast") * 5  # step 9 reused already: start computed
    assert row[20:30] == ("wars",) * 10
    assert row[30:40] == ("ast", "full") * 5
    for cells in (["ast"] * 4, ["full", "ast", "ast", "ast"], ["ast", "wars+asc", "ast", "ast"]):
        for steps in (5, 8, 20, 33, 50):
            row = attention_row(cells, steps)
            assert len(row) == steps and row[0] == "full"
            assert reuses_follow_computed_steps(row)


# --- random points ------------------------------------------------------------------------------

def test_random_transformer_points_build_valid_plans_that_fit(dit, dit_space):
    methods_seen = set()
    for plan in random_plans(dit_space):
        assert Plan.from_dict(plan.to_dict()).content_hash() == plan.content_hash()
        check_plan_fits(dit, plan)
        assert plan.num_steps in (50, 40, 30, 20) and plan.notes["search"] == "optuna"
        rows = plan.attention.methods
        assert len(rows) == 8 and all(row[0] == "full" for row in rows)
        for row in rows:
            assert reuses_follow_computed_steps(row)
            methods_seen.update(row)
        if any(m in WINDOW_METHODS for row in rows for m in row):
            assert plan.attention.window_left == plan.attention.window_right in (16, 32, 64)
        else:  # the window does nothing: the base plan's, so equal plans hash alike
            assert (plan.attention.window_left, plan.attention.window_right) == (32, 32)
        assert round_trip(dit_space, plan).content_hash() == plan.content_hash()
    assert methods_seen == {"full", "full+asc", "wars", "wars+asc", "ast"}


def test_the_window_only_matters_with_window_attention(dit_space):
    def plan(method: str, window: int) -> Plan:
        cells = {name: method for name in dit_space.cells()}
        return dit_space.build({"steps": 40, "window": window, **cells})

    for method in ("full", "full+asc", "ast"):  # the base plan's window: one plan for all windows
        assert len({plan(method, w).content_hash() for w in dit_space.windows}) == 1
        assert plan(method, 16).attention.window_left == 32
    for method in ("wars", "wars+asc"):
        assert len({plan(method, w).content_hash() for w in dit_space.windows}) == 3
        assert plan(method, 16).attention.window_left == plan(method, 16).attention.window_right == 16


def test_random_unet_points_build_valid_plans_that_apply(unet, unet_space):
    kinds = set()
    for plan in random_plans(unet_space, seed=1):
        assert Plan.from_dict(plan.to_dict()).content_hash() == plan.content_hash()
        check_plan_fits(unet, plan)
        with apply_plan(unet, plan):  # the runtime's own checks (branch below the depth-skip)
            pass
        dc = plan.deepcache
        if dc is not None:
            assert dc.interval > 1
            kinds.add(dc.schedule)
            full = dc.full_step_indices(plan.num_steps)
            assert len(full) == math.ceil(plan.num_steps / dc.interval) and full[0] == 0
        if plan.depth_skip is not None:
            kinds.add("depth_skip")
        kinds.add(plan.sampling.spacing)
        assert round_trip(unet_space, plan).content_hash() == plan.content_hash()
    assert kinds == {"uniform", "nonuniform", "depth_skip", "gamma"}


def test_unet_points_with_deepcache_and_depth_skip(unet, unet_space):
    point = {"steps": 50, "interval": 5, "schedule": "uniform", "center": 0.0, "drop_levels": 1,
             "spacing": "uniform"}
    last_kept = unet_layout(unet).depth_for(1)
    assert unet_space.last_kept_skip(1) == last_kept == 5
    both = unet_space.build({**point, "branch": 2})
    assert both.deepcache.branch == 2 and both.depth_skip.drop_levels == 1
    # a branch at or below the last kept skip caches nothing: the same plan as depth-skip alone
    for branch in range(last_kept, 9):
        plan = unet_space.build({**point, "branch": branch})
        assert plan.deepcache is None and plan.depth_skip.drop_levels == 1


@pytest.mark.parametrize("total", [8, 20, 50, 100])
def test_every_nonuniform_point_builds(unet, total):
    base = full_plan(model_ref(unet, "digits-unet"), total, GUIDANCE)
    space = UNetSpace(model_facts(unet), base)
    assert max(space.intervals) <= min(space.steps)
    for steps in space.steps:
        for interval in space.intervals:
            for center in CENTERS:
                plan = space.build({"steps": steps, "branch": 3, "interval": interval,
                                    "schedule": "nonuniform", "center": center,
                                    "drop_levels": 0, "spacing": "uniform"})
                dc = plan.deepcache
                if interval == 1:
                    assert dc is None
                    continue
                full = dc.full_step_indices(steps)
                assert len(full) == math.ceil(steps / interval)
                if dc.schedule == "nonuniform":  # else the power law failed or gave the uniform steps
                    assert full != tuple(range(0, steps, interval))


def test_size_is_the_product_of_the_choice_counts(dit_space, unet_space):
    for space in (dit_space, unet_space):
        assert space.size() == math.prod(len(c) for c in space.choices().values())
    assert dit_space.size() == 4 * 3 * 5 ** 32
    assert unet_space.size() == 4 * 9 * len(INTERVALS) * 2 * 3 * 2 * 3 == 10368
    names = [name for name, _ in dit_space.describe()]
    assert names[:2] == ["steps", "window"] and "32 parameters" in names[2]
    assert [name for name, _ in unet_space.describe()] == list(unet_space.choices())


def test_no_cfg_sharing_without_guidance(dit):
    facts = model_facts(dit)
    space = make_space(facts, full_plan(model_ref(dit, "digits-dit"), 20, 1.0, facts["num_layers"]))
    assert space.methods == ("full", "wars", "ast")
    for plan in random_plans(space)[:20]:
        assert not any(m in SHARES_CFG for row in plan.attention.methods for m in row)


# --- params_of ----------------------------------------------------------------------------------

def test_full_plans_are_points(dit_space, unet_space):
    for space in (dit_space, unet_space):
        assert round_trip(space, space.base).content_hash() == space.base.content_hash()


def test_hand_made_transformer_plans(dit, dit_space):
    for method in ("wars", "wars+asc", "full+asc", "asc", "full"):
        for window in (16, 32, 64):
            plan = uniform_plan("digits-dit", dit, steps=STEPS, guidance_scale=GUIDANCE,
                                attention=method, window=window)
            back = round_trip(dit_space, plan)
            if method == "asc":  # asc is full+asc by another name: same point, other spelling
                assert back.attention.methods[0][1:] == ("full+asc",) * (STEPS - 1)
            elif method in WINDOW_METHODS or window == 32:
                assert back.content_hash() == plan.content_hash()
    ast = uniform_plan("digits-dit", dit, steps=STEPS, guidance_scale=GUIDANCE, attention="ast")
    back = round_trip(dit_space, ast)  # ast at every step is not in the space: it alternates
    assert back.attention.methods[0][1:5] == ("ast", "full", "ast", "full")
    other = uniform_plan("digits-dit", dit, steps=26, guidance_scale=GUIDANCE, attention="wars",
                         from_step=13)  # fewer steps: resampled onto the nearest step count
    params = dit_space.params_of(other)
    assert params["steps"] == 30
    assert [params[f"m_0_{s}"] for s in range(4)] == ["full", "full", "wars", "wars"]
    check_plan_fits(dit, round_trip(dit_space, other))


def test_hand_made_unet_plans(unet, unet_space):
    def make(**kwargs):
        return uniform_plan("digits-unet", unet, steps=kwargs.pop("steps", STEPS),
                            guidance_scale=GUIDANCE, **kwargs)

    exact = [make(deepcache_branch=2, interval=5), make(deepcache_branch=1, interval=3, drop_levels=1),
             make(drop_levels=1), make(gamma=2.0), make(deepcache_branch=8, interval=10, gamma=1.5),
             make(steps=30, deepcache_branch=0, interval=2)]
    for plan in exact:
        assert round_trip(unet_space, plan).content_hash() == plan.content_hash()
    near = {make(deepcache_branch=4, interval=7): (4, 8),  # 7 is not a choice; ties go up
            make(steps=45, deepcache_branch=3, interval=2): (3, 2)}
    for plan, (branch, interval) in near.items():
        back = round_trip(unet_space, plan)
        assert (back.deepcache.branch, back.deepcache.interval) == (branch, interval)
        check_plan_fits(unet, back)


# --- the DeepCache grid -------------------------------------------------------------------------

def test_grid_plans_are_exact_points(unet_space):
    grid = deepcache_grid(unet_space.facts, unet_space.base)
    labels = [label for label, _ in grid]
    assert len(set(labels)) == len(labels) == 24
    assert len({plan.content_hash() for _, plan in grid}) == len(grid)
    assert grid_branches(unet_space.facts) == [0, 3, 6, 8]
    assert "branch 0 · 1:5 uniform" in labels and "branch 3 · 1:10 non-uniform" in labels
    for label, plan in grid:
        dc = plan.deepcache
        assert plan.num_steps == STEPS and plan.depth_skip is None
        assert label.startswith(f"branch {dc.branch} · 1:{dc.interval} ")
        assert ("non-uniform" in label) == (dc.schedule == "nonuniform")
        assert round_trip(unet_space, plan).content_hash() == plan.content_hash()


def test_grid_order_spreads_over_the_range(unet_space):
    grid = deepcache_grid(unet_space.facts, unet_space.base)
    labels = [label for label, _ in grid]
    assert labels[0] == "branch 8 · 1:2 uniform" and labels[-1] == "branch 0 · 1:10 uniform"
    picked = [plan.deepcache for _, plan in spread(grid, 4)]
    assert len({dc.branch for dc in picked}) >= 3 and len({dc.interval for dc in picked}) >= 3


def test_spread():
    assert spread(list(range(10)), 4) == [0, 3, 6, 9]
    assert spread("abc", 5) == ["a", "b", "c"]
    assert spread("abc", 1) == ["a"] and spread("abc", 0) == []
    for n in range(1, 30):
        for k in range(2, n + 1):
            picked = spread(list(range(n)), k)
            assert len(picked) == k == len(set(picked)) and picked[0] == 0 and picked[-1] == n - 1
            assert picked == sorted(picked)


# --- the plans run ------------------------------------------------------------------------------

def test_grid_and_space_plans_generate():
    torch.set_num_threads(1)  # one image at a time: a second thread only adds contention
    short = 10  # the plans' own step count is what runs: build them for a short generation
    unet = load_subject("digits-unet")
    facts = model_facts(unet.denoiser)
    space = make_space(facts, full_plan(model_ref(unet.denoiser, "digits-unet"), short, GUIDANCE))
    grid = deepcache_grid(facts, space.base)
    mixed = space.build({"steps": short, "branch": 1, "interval": 3, "schedule": "nonuniform",
                         "center": 0.3, "drop_levels": 1, "spacing": "gamma2.0"})
    assert mixed.deepcache.schedule == "nonuniform" and mixed.depth_skip is not None
    for plan in [plan for _, plan in spread(grid, 2)] + [mixed]:
        assert plan.num_steps == short
        images = unet.generate_batch(plan, [0], [3])
        assert images.shape == (1, 1, 16, 16) and torch.isfinite(images).all()
    dit = load_subject("digits-dit")
    facts = model_facts(dit.denoiser)
    dspace = make_space(facts, full_plan(model_ref(dit.denoiser, "digits-dit"), short, GUIDANCE,
                                         facts["num_layers"]))
    cells = {f"m_{layer}_{seg}": dspace.methods[(layer + seg) % len(dspace.methods)]
             for layer in range(8) for seg in range(4)}
    plan = dspace.build({"steps": short, "window": 16, **cells})
    assert {m for row in plan.attention.methods for m in row} == set(dspace.methods)
    images = dit.generate_batch(plan, [0], [3])
    assert images.shape == (1, 1, 16, 16) and torch.isfinite(images).all()


def test_space_modules_import_without_torch():
    code = ("import sys, search.space, search.baselines; "
            "sys.exit('torch' in sys.modules)")
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
