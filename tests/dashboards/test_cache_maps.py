"""diffusers' caches are drawn as a block x step map: which part of the block stack computes,
reuses, forecasts or decides at run time at each step, by each cache's own rule."""

from __future__ import annotations

from dashboards.figures import technique_figure
from dashboards.views import technique_map
from evaluators.plan import ModelRef, Plan, Sampling
from evaluators.techniques.first_block_cache import FirstBlockCache
from evaluators.techniques.mag_cache import MagCache
from evaluators.techniques.pyramid_attention_broadcast import PyramidAttentionBroadcast
from evaluators.techniques.taylorseer_cache import TaylorSeerCache

STEPS = 8


def _map(section) -> dict:
    plan = Plan(ModelRef("tiny-flux", "FluxTransformer2DModel"),
                Sampling(STEPS, 1.0, scheduler="FlowMatchEulerDiscreteScheduler"),
                **{section.section: section})
    return technique_map(plan)


def test_first_block_cache_runs_the_first_block_and_decides_the_rest_at_run_time() -> None:
    m = _map(FirstBlockCache(0.1))
    assert m["kind"] == "blocks" and m["labels"] == ["first block", "other blocks"]
    assert m["rows"][0] == ["compute"] * STEPS
    assert m["rows"][1] == ["compute"] + ["run-time"] * (STEPS - 1)
    fig = technique_figure({"techniques": m})
    assert fig.layout.title.text.startswith("FirstBlockCache per block and step")
    assert list(fig.data[0].y) == ["first block", "other blocks"]


def test_taylorseer_forecasts_between_its_computed_steps() -> None:
    m = _map(TaylorSeerCache(cache_interval=3, disable_cache_before_step=2))
    # warm-up 0, 1; then diffusers computes at (step - 2 - 1) % 3 == 0: steps 3 and 6
    assert m["rows"][0] == ["compute", "compute", "forecast", "compute", "forecast", "forecast",
                            "compute", "forecast"]


def test_mag_cache_skips_where_its_accumulated_ratio_error_allows() -> None:
    ratios = (1.0, 0.99, 0.98, 0.9, 0.99, 0.99, 0.5, 0.99)
    m = _map(MagCache(ratios, threshold=0.1, max_skip_steps=2, retention_ratio=0.25))
    # retention: steps 0, 1; step 2 err .02 skip; 3: ratio .882, err .138 > .1 compute;
    # 4: .01 skip; 5: err .01 + .0199 skip; 6: run 3 > K compute; 7: .01 skip
    assert m["rows"] == [["compute", "compute", "cached", "compute", "cached", "cached",
                          "compute", "cached"]]


def test_pyramid_attention_broadcast_broadcasts_inside_its_timestep_window() -> None:
    m = _map(PyramidAttentionBroadcast(2, (100, 800)))
    # evenly spaced timesteps 1000, 875, 750, ..., 125: inside (100, 800) from step 2 on
    assert m["rows"][0] == ["compute", "compute", "compute", "broadcast", "compute",
                            "broadcast", "compute", "broadcast"]
    assert m["rows"][1] == ["compute"] * STEPS  # no cross-attention skip range
    assert "evenly spaced" in technique_figure({"techniques": m}).layout.title.text
