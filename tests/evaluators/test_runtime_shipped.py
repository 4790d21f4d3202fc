"""The plan runtime on the shipped digits models: exact identity, faithful semantics, clean undo."""

from __future__ import annotations

import pytest
import torch

from evaluators.plan import AttentionPlan, DeepCache, DepthSkip, Plan, PlanError, Sampling, full_plan
from evaluators.runtime import apply_plan, model_ref
from evaluators.runtime.unet import unet_layout
from evaluators.sampling import denoise
from evaluators.zoo import load_model, load_scheduler

STEPS = 10
LABELS = torch.tensor([0, 3, 7, 9])
SEEDS = [11, 12, 13, 14]


def run(model, name, plan=None):
    sched = load_scheduler(name)
    if plan is None:
        return denoise(model, sched, LABELS, SEEDS, STEPS, 1.5)
    with apply_plan(model, plan):
        return denoise(model, sched, LABELS, SEEDS, STEPS, 1.5)


def attention_plan(model, methods_for_step, window=(32, 32), steps=STEPS):
    layers = len(model.transformer_blocks)
    rows = tuple(tuple("full" if t == 0 else methods_for_step(layer, t) for t in range(steps))
                 for layer in range(layers))
    return Plan(model_ref(model, "digits-dit"), Sampling(steps, 1.5),
                attention=AttentionPlan(rows, *window))


def unet_plan(model, steps=STEPS, **sections):
    return Plan(model_ref(model, "digits-unet"), Sampling(steps, 1.5), **sections)


def snapshot(model):
    return {name: (sorted(m.__dict__), getattr(m, "processor", None))
            for name, m in model.named_modules()}


# --- identity and undo ---------------------------------------------------------------------------

def test_identity_plans_are_bit_exact(dit, unet):
    ref = model_ref(dit, "digits-dit")
    assert torch.equal(run(dit, "digits-dit", full_plan(ref, STEPS, 1.5, 8)),
                       run(dit, "digits-dit"))
    base = run(unet, "digits-unet")
    assert torch.equal(run(unet, "digits-unet", unet_plan(unet)), base)
    assert torch.equal(run(unet, "digits-unet", unet_plan(unet, deepcache=DeepCache(4, 1))), base)


def test_remove_restores_the_model_exactly(dit, unet):
    for model, plan in ((dit, attention_plan(dit, lambda layer, t: "wars+asc")),
                        (unet, unet_plan(unet, deepcache=DeepCache(2, 3)))):
        before = snapshot(model)
        applied = apply_plan(model, plan)
        assert snapshot(model) != before
        applied.remove()
        applied.remove()  # idempotent
        assert snapshot(model) == before


def test_plan_cannot_be_applied_twice(unet):
    plan = unet_plan(unet, deepcache=DeepCache(2, 3))
    with apply_plan(unet, plan), pytest.raises(PlanError, match="already applied"):
        apply_plan(unet, plan)


def test_each_generation_starts_fresh(unet, dit):
    # Caches are cleared when a new generation starts: two runs under one applied plan agree.
    for model, name, plan in ((unet, "digits-unet", unet_plan(unet, deepcache=DeepCache(1, 4))),
                              (dit, "digits-dit", attention_plan(dit, lambda layer, t: "ast"))):
        sched = load_scheduler(name)
        with apply_plan(model, plan) as applied:
            first = denoise(model, sched, LABELS, SEEDS, STEPS, 1.5)
            second = denoise(model, sched, LABELS, SEEDS, STEPS, 1.5)
            assert applied.state.generations == 2
        assert torch.equal(first, second)


def test_more_steps_than_the_plan_is_an_error(unet):
    plan = unet_plan(unet, steps=5, deepcache=DeepCache(2, 2))
    with apply_plan(unet, plan), pytest.raises(PlanError, match="num_inference_steps=5"):
        denoise(unet, load_scheduler("digits-unet"), LABELS, SEEDS, 8, 1.5)


# --- plans that do not fit -------------------------------------------------------------------

def test_plans_that_do_not_fit_the_model_are_rejected(dit, unet):
    dit_plan = attention_plan(dit, lambda layer, t: "wars")
    with pytest.raises(PlanError, match="model_class"):
        apply_plan(unet, dit_plan)
    other = Plan.from_dict({**dit_plan.to_dict(), "model": {**dit_plan.to_dict()["model"],
                                                            "fingerprint": "0123456789abcdef"}})
    with pytest.raises(PlanError, match="fingerprint"):
        apply_plan(dit, other)
    short = Plan(dit_plan.model, dit_plan.sampling,
                 attention=AttentionPlan(dit_plan.attention.methods[:5]))
    with pytest.raises(PlanError, match="8 self-attention layers"):
        apply_plan(dit, short)
    with pytest.raises(PlanError, match="branch"):
        apply_plan(unet, unet_plan(unet, deepcache=DeepCache(9, 2)))
    with pytest.raises(PlanError, match="drop_levels"):
        apply_plan(unet, unet_plan(unet, depth_skip=DepthSkip(3)))
    with pytest.raises(PlanError, match="not supported"):
        apply_plan(load_model("digits-classifier"), dit_plan)
    assert snapshot(dit) == snapshot(dit)  # nothing left behind by the failures
    assert "_diffusers_hook" not in dit.__dict__ and "_diffusers_hook" not in unet.__dict__


# --- DeepCache -------------------------------------------------------------------------------

def conv_call_counter(module):
    calls = {"n": 0}
    handles = [m.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
               for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    return calls, handles


def step_inputs(model, t=500):
    x = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 10
    return x, torch.full((8,), t), y


def test_unet_skip_numbering_matches_deepcache(unet):
    layout = unet_layout(unet)
    # conv_in, then per level: 2 resnets + a downsampler (none at the deepest level).
    assert [(s.block, s.layer) for s in layout.skips] == [
        (None, 0), (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]
    assert [s.level for s in layout.skips] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # Up layers consume the skips in reverse; the last up layer consumes conv_in's output.
    assert [u.skip for u in layout.up_layers] == list(range(8, -1, -1))
    assert layout.depth_for(1) == 5 and layout.depth_for(2) == 2


@pytest.mark.parametrize("branch", [0, 3, 5, 8])
def test_deepcache_partial_step_runs_only_the_shallow_branch(unet, branch):
    layout = unet_layout(unet)
    consumer = next(u for u in layout.up_layers if u.skip == branch)
    deep_down = [unet.down_blocks[s.block] for s in layout.skips
                 if s.block is not None and s.index > branch and s.layer == 0]
    shallow_up = unet.up_blocks[consumer.block].resnets[consumer.layer]
    x, t, y = step_inputs(unet)
    plan = unet_plan(unet, deepcache=DeepCache(branch, 2))
    deep_calls, h1 = conv_call_counter(unet.mid_block)
    up_calls, h2 = conv_call_counter(shallow_up)
    down_calls = [conv_call_counter(b.resnets[-1]) for b in deep_down]
    try:
        with torch.no_grad(), apply_plan(unet, plan) as applied:
            applied.state.manual = True
            applied.state.set_step(0)
            full = unet(x, t, class_labels=y).sample
            after_full = (deep_calls["n"], up_calls["n"], [c["n"] for c, _ in down_calls])
            applied.state.set_step(1)
            partial = unet(x, t, class_labels=y).sample
    finally:
        for h in h1 + h2 + [h for _, hs in down_calls for h in hs]:
            h.remove()
    assert after_full[0] > 0 and deep_calls["n"] == after_full[0]  # mid block: cached
    assert up_calls["n"] == 2 * after_full[1]  # the consumer of skip `branch` runs again
    assert [c["n"] for c, _ in down_calls] == after_full[2]  # deeper down layers: cached
    # Same input at the partial step: the cached deep feature is exactly the fresh one.
    assert torch.equal(partial, full)


def test_deepcache_uses_the_cache_and_schedules(unet):
    base = run(unet, "digits-unet")
    cached = run(unet, "digits-unet", unet_plan(unet, deepcache=DeepCache(3, 3)))
    assert not torch.equal(cached, base)
    assert (cached - base).abs().mean() < 0.1  # shallow branch 3, 1:3 keeps the images close
    plan = unet_plan(unet, steps=20, deepcache=DeepCache(2, 4, "nonuniform", center=8, power=1.4))
    assert len(plan.deepcache.full_step_indices(20)) == 5
    explicit = unet_plan(unet, deepcache=DeepCache(2, schedule="explicit", full_steps=(0, 1, 5)))
    with apply_plan(unet, explicit) as applied:
        seen = []
        applied.state.subscribe(on_step=lambda s: seen.append(applied.technique.partial))
        denoise(unet, load_scheduler("digits-unet"), LABELS, SEEDS, STEPS, 1.5)
    assert seen == [s not in (0, 1, 5) for s in range(STEPS)]


# --- depth-skip ------------------------------------------------------------------------------

@pytest.mark.parametrize("drop", [1, 2])
def test_depth_skip_never_runs_dropped_levels_and_feeds_zeros(unet, drop):
    layout = unet_layout(unet)
    d = layout.depth_for(drop)
    consumer = next(u for u in layout.up_layers if u.skip == d)
    resnet = unet.up_blocks[consumer.block].resnets[consumer.layer]
    captured = {}
    pre = resnet.register_forward_pre_hook(lambda m, args: captured.update({"in": args[0]}))
    mid_calls, h = conv_call_counter(unet.mid_block)
    skips = {}
    producer = layout.skips[d]
    block = unet.down_blocks[producer.block]
    source = block.attentions[producer.layer] if getattr(block, "attentions", None) else \
        block.resnets[producer.layer]
    post = source.register_forward_hook(lambda m, a, out: skips.update({"d": out}))
    x, t, y = step_inputs(unet)
    try:
        with torch.no_grad(), apply_plan(unet, unet_plan(unet, depth_skip=DepthSkip(drop))):
            out = unet(x, t, class_labels=y).sample
    finally:
        for hh in [pre, post] + h:
            hh.remove()
    assert mid_calls["n"] == 0
    skip = skips["d"]
    deep = captured["in"][:, : captured["in"].shape[1] - skip.shape[1]]
    assert deep.shape[-2:] == skip.shape[-2:] and torch.count_nonzero(deep) == 0
    assert torch.equal(captured["in"][:, deep.shape[1]:], skip)
    assert out.shape == x.shape and torch.isfinite(out).all()


# --- DiTFastAttn -----------------------------------------------------------------------------

def attention_outputs(dit, plan, steps=(0, 1), same_input=True):
    """attn1 outputs of every layer at each step, with the clock driven by hand."""
    x, t, y = step_inputs(dit)
    x, y = torch.cat([x[:4], x[:4]]), torch.cat([y[:4], torch.full((4,), 10)])
    outs = {}
    hooks = [b.attn1.register_forward_hook(lambda m, a, o, i=i: outs.setdefault(step, {}).__setitem__(i, o))
             for i, b in enumerate(dit.transformer_blocks)]
    try:
        with torch.no_grad(), apply_plan(dit, plan) as applied:
            applied.state.manual = True
            for step in steps:
                applied.state.set_step(step)
                xi = x if same_input else x + 0.1 * step
                dit(xi, t, class_labels=y)
    finally:
        for h in hooks:
            h.remove()
    return outs


@pytest.mark.parametrize("method", ["wars", "ast", "full+asc", "wars+asc"])
def test_methods_reproduce_full_attention_on_repeated_input(dit, method):
    # wars: O_win + (O_full - O_win) of the same q, k, v; ast: the same output again.
    outs = attention_outputs(dit, attention_plan(dit, lambda layer, t: method))
    for layer, full in outs[0].items():
        again = outs[1][layer]
        if method in ("full+asc", "wars+asc"):  # the second half is the first half's copy
            assert torch.equal(again[4:], again[:4])
            full = full[:4]
            again = again[:4]
        assert torch.allclose(again, full, atol=1e-5), (method, layer)


def test_ast_skips_the_projections_and_wars_caches_residual_only_when_needed(dit, monkeypatch):
    import evaluators.runtime.attention as attention

    calls = {"window": 0, "q": 0}
    real = attention.window_attention

    def counting(*args, **kwargs):
        calls["window"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(attention, "window_attention", counting)
    handle = dit.transformer_blocks[0].attn1.to_q.register_forward_hook(
        lambda *a: calls.__setitem__("q", calls["q"] + 1))
    try:
        # layer 0: full, ast, ast, full, full; others all full.
        plan = attention_plan(dit, lambda layer, t: ("ast", "ast", "full", "full")[t - 1]
                              if layer == 0 else "full", steps=5)
        attention_outputs(dit, plan, steps=range(5))
        assert calls["q"] == 3 and calls["window"] == 0
        calls.update(window=0, q=0)
        # layer 0: full, wars, wars, full, ast -> one residual (step 0) + two window steps.
        plan = attention_plan(dit, lambda layer, t: ("wars", "wars", "full", "ast")[t - 1]
                              if layer == 0 else "full", steps=5)
        attention_outputs(dit, plan, steps=range(5))
        assert calls["window"] == 3 and calls["q"] == 4
    finally:
        handle.remove()


def test_wars_uses_the_residual_of_the_last_full_step(dit):
    # With a different input at the wars step, the output is O_win(new) + R(step 0), not full.
    plan = attention_plan(dit, lambda layer, t: "wars")
    outs = attention_outputs(dit, plan, same_input=False)
    full = attention_outputs(dit, attention_plan(dit, lambda layer, t: "full"), same_input=False)
    assert not torch.allclose(outs[1][0], full[1][0], atol=1e-4)
    # A window as wide as the sequence makes wars exact full attention.
    wide = attention_plan(dit, lambda layer, t: "wars", window=(255, 255))
    outs = attention_outputs(dit, wide, same_input=False)
    for layer in range(8):
        assert torch.allclose(outs[1][layer], full[1][layer], atol=1e-5)


def test_compressed_generation_stays_close(dit):
    base = run(dit, "digits-dit")
    for method in ("wars", "full+asc", "ast"):
        out = run(dit, "digits-dit", attention_plan(dit, lambda layer, t, m=method: m
                                                     if t % 2 else "full"))
        assert not torch.equal(out, base)
        assert torch.isfinite(out).all()
        assert (out - base).abs().mean() < 0.25, method
