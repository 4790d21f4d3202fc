"""The technique map's title names the sections it draws (it read 'DeepCache schedule' for any
schedule-kind plan, a diffusers cache plan included)."""

from __future__ import annotations

from dashboards.figures import technique_figure
from dashboards.views import technique_map
from evaluators.plan import DeepCache, ModelRef, Plan, Sampling
from evaluators.techniques.first_block_cache import FirstBlockCache


def _title(plan: Plan) -> str:
    return technique_figure({"techniques": technique_map(plan)}).layout.title.text


def test_a_cache_plan_is_titled_by_its_cache_not_deepcache() -> None:
    plan = Plan(ModelRef("tiny-flux", "FluxTransformer2DModel"),
                Sampling(8, 1.0, scheduler="FlowMatchEulerDiscreteScheduler"),
                **{FirstBlockCache.section: FirstBlockCache(0.1)})
    title = _title(plan)
    assert "FirstBlockCache" in title and "DeepCache" not in title


def test_a_deepcache_plan_keeps_its_title() -> None:
    plan = Plan(ModelRef("digits-unet", "UNet2DModel"), Sampling(8, 1.5),
                deepcache=DeepCache(branch=2, interval=2))
    assert _title(plan).startswith("DeepCache schedule: branch 2, 4 full of 8 steps")
