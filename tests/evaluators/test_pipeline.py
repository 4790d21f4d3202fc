"""The shipped models in a diffusers pipeline: the README's `apply_plan(pipe, plan)` pattern runs on
them verbatim and gives the images edgediff's own sampling gives under the plan."""

from __future__ import annotations

import pytest
import torch

from evaluators.plan import Plan
from evaluators.runtime import apply_plan
from evaluators.sampling import SampleSpec, generate
from evaluators.templates import uniform_plan
from evaluators.zoo import load_scheduler
from evaluators.zoo.pipeline import DigitsPipeline, load_pipeline

STEPS = 4


@pytest.mark.parametrize("name, technique", [
    ("digits-dit", {"attention": "wars+asc"}),
    ("digits-unet", {"deepcache_branch": 2, "interval": 2}),
])
def test_readme_pattern_on_the_shipped_models(name, technique, tmp_path):
    pipe = load_pipeline(name)
    assert isinstance(pipe, DigitsPipeline)
    uniform_plan(name, pipe.denoiser, steps=STEPS, guidance_scale=1.5, **technique).save(
        tmp_path / "plan.json")
    scheduler = pipe.scheduler

    # The README's snippet, with the digits pipeline's own arguments for `...`.
    plan = Plan.load(tmp_path / "plan.json")
    with apply_plan(pipe, plan):
        images = pipe(class_labels=[0, 1, 2], num_inference_steps=plan.num_steps).images

    assert len(images) == 3 and images[0].size == (16, 16)
    with apply_plan(pipe, plan):
        tensors = pipe(class_labels=[0, 1, 2], num_inference_steps=plan.num_steps,
                       output_type="pt").images
    ours, _ = generate(pipe.denoiser, load_scheduler(name), SampleSpec(3, STEPS), plan=plan,
                       progress=False)
    assert torch.equal(tensors, ours)
    plain = pipe(class_labels=[0, 1, 2], num_inference_steps=STEPS, output_type="pt").images
    assert not torch.equal(plain, tensors) and pipe.scheduler is scheduler  # removed exactly


def test_only_shipped_generators():
    with pytest.raises(ValueError, match="not a shipped generator"):
        load_pipeline("digits-classifier")
