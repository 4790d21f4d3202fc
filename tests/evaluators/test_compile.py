"""torch.compile with a plan: apply then compile traces without a graph break and gives the eager
plan's outputs; a model compiled before apply_plan is refused in one line."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo as dynamo
from diffusers import DiTTransformer2DModel

from evaluators.plan import AttentionPlan, Plan, PlanError, Sampling
from evaluators.runtime import apply_plan, model_ref

TIMESTEPS = (900, 500, 100)


@pytest.fixture()
def tiny():
    torch.manual_seed(0)
    model = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                  out_channels=8, num_layers=2, sample_size=8, patch_size=2,
                                  num_embeds_ada_norm=10).eval()
    rows = tuple(("full", "wars+asc", "ast") for _ in model.transformer_blocks)
    plan = Plan(model_ref(model, "tiny"), Sampling(3, 4.0), attention=AttentionPlan(rows, 2, 2))
    yield model, plan
    dynamo.reset()


def generation(model, x, y):
    return [model(x, timestep=torch.tensor([t, t]), class_labels=y).sample for t in TIMESTEPS]


@torch.no_grad()
def test_apply_then_compile_has_no_graph_break_and_matches_eager(tiny):
    model, plan = tiny
    x, y = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([3, 10])
    with apply_plan(model, plan):
        eager = generation(model, x, y)
    with apply_plan(model, plan):
        explained = dynamo.explain(model)(x, timestep=torch.tensor([900, 900]), class_labels=y)
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]
    dynamo.reset()
    with apply_plan(model, plan):
        compiled = torch.compile(model, backend="eager")
        for a, b in zip(generation(compiled, x, y), eager, strict=True):
            torch.testing.assert_close(a, b)


def test_compile_then_apply_is_refused(tiny):
    model, plan = tiny
    with pytest.raises(PlanError, match="apply the plan first, then compile"):
        apply_plan(torch.compile(model, backend="eager"), plan)
    model.compile(backend="eager")
    with pytest.raises(PlanError, match="already compiled"):
        apply_plan(model, plan)
