"""The technique registry (plan sections) and the family registry (models): a plan composes the
sections present, apply_plan installs each, a family says which sections apply, and a new section
is one registered class."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import pytest
import torch

from evaluators.cost import count_macs
from evaluators.families import FAMILIES, facts_of, family_of
from evaluators.fields import integer, json_object
from evaluators.plan import AttentionPlan, DeepCache, DepthSkip, Plan, PlanError, Sampling
from evaluators.runtime import apply_plan, model_ref
from evaluators.techniques import SECTIONS, Technique, register


def test_sections_are_registered_in_plan_file_order():
    assert list(SECTIONS)[:3] == ["deepcache", "depth_skip", "attention"]
    assert set(list(SECTIONS)[3:]) == {"faster_cache", "first_block_cache", "mag_cache",
                                       "pyramid_attention_broadcast", "taylorseer_cache"}
    assert SECTIONS["deepcache"] is DeepCache and SECTIONS["attention"] is AttentionPlan


def test_a_plan_composes_the_sections_present():
    ref = model_ref_stub()
    plan = Plan(ref, Sampling(10, 1.5), depth_skip=DepthSkip(1), deepcache=DeepCache(2, 3))
    assert plan.section_names == ("deepcache", "depth_skip")
    assert plan.attention is None and plan.deepcache == DeepCache(2, 3)
    assert list(plan.to_dict())[-2:] == ["deepcache", "depth_skip"]
    dropped = replace(plan, deepcache=None, notes={"by": "test"})
    assert dropped.section_names == ("depth_skip",) and dropped.notes == {"by": "test"}
    assert Plan.from_dict(plan.to_dict()) == plan and hash(plan) == hash(Plan.from_dict(plan.to_dict()))
    for copied in (pickle.loads(pickle.dumps(plan)), copy.deepcopy(plan)):
        assert copied == plan and copied.content_hash() == plan.content_hash()
    with pytest.raises(TypeError, match="unknown section"):
        Plan(ref, Sampling(10, 1.5), no_such_cache=DeepCache(0))
    with pytest.raises(AttributeError):
        _ = plan.no_such_cache


@dataclass(frozen=True)
class _Toy(Technique):
    """A technique of one knob, registered only inside the test below."""

    section: ClassVar[str] = "toy"
    title: ClassVar[str] = "toy"
    installer: ClassVar[str] = "tests.evaluators.test_registries:_install_toy"
    every: int

    @classmethod
    def parse(cls, data: Any, sampling: Sampling) -> _Toy:
        d = json_object(data, "toy", {"every"}, {"every"})
        return cls(integer(d, "every", "toy", 1, sampling.num_inference_steps))


def test_a_new_technique_is_one_registered_class():
    register(_Toy)
    try:
        body = Plan(model_ref_stub(), Sampling(8, 1.0)).to_dict()
        plan = Plan.from_dict({**body, "toy": {"every": 2}})
        assert plan.toy == _Toy(2) and plan.to_dict()["toy"] == {"every": 2}
        with pytest.raises(PlanError, match=r"^plan\.toy\.every: 9 is out of range"):
            Plan.from_dict({**body, "toy": {"every": 9}})
    finally:
        del SECTIONS["toy"]
    with pytest.raises(PlanError, match="unknown field"):
        Plan.from_dict({**body, "toy": {"every": 2}})


def test_families_by_class_name(dit, unet):
    assert family_of("DiTTransformer2DModel").cfg_order == "cond-first"
    assert family_of("PixArtTransformer2DModel").cfg_order == "uncond-first"
    assert family_of("UNet2DConditionModel").cfg_order == "uncond-first"
    assert set(FAMILIES) >= {"DiTTransformer2DModel", "PixArtTransformer2DModel",
                             "Transformer2DModel", "UNet2DModel", "UNet2DConditionModel"}
    for family in FAMILIES.values():
        assert set(family.techniques) <= set(SECTIONS)
    facts = facts_of(dit)
    assert (facts.denoiser, facts.num_layers, facts.num_tokens) == ("transformer", 8, 256)
    ufacts = facts_of(unet)
    assert ufacts.denoiser == "unet" and ufacts.num_branches == len(ufacts.skip_levels) > 1
    with pytest.raises(PlanError, match="not supported"):
        family_of(torch.nn.Linear(2, 2))


def test_a_section_of_another_family_is_rejected(dit, unet):
    ref = model_ref(unet, "digits-unet")
    rows = (("full",) * 4,) * 8
    with pytest.raises(PlanError, match=r"^plan\.attention: DiTFastAttn does not apply to UNet2DModel"):
        apply_plan(unet, Plan(ref, Sampling(4, 1.5), attention=AttentionPlan(rows)))
    with pytest.raises(PlanError, match="no attention section"):
        apply_plan(dit, Plan(model_ref(dit, "digits-dit"), Sampling(4, 1.5)))
    assert "_diffusers_hook" not in unet.__dict__ and "_diffusers_hook" not in dit.__dict__


def test_deepcache_and_depth_skip_install_together(unet):
    ref, sampling = model_ref(unet, "digits-unet"), Sampling(6, 1.5)
    both = Plan(ref, sampling, deepcache=DeepCache(1, 3), depth_skip=DepthSkip(1))
    with apply_plan(unet, both) as applied:
        assert set(applied.runtimes) == {"deepcache", "depth_skip"}
        runtime = applied.runtimes["deepcache"]
        assert applied.runtimes["depth_skip"] is runtime is applied.technique
        assert runtime.branch == 1 and runtime.depth is not None
    assert "_diffusers_hook" not in unet.__dict__
    macs = {name: count_macs(unet, plan).total for name, plan in {
        "full": Plan(ref, sampling), "cache": replace(both, depth_skip=None),
        "skip": replace(both, deepcache=None), "both": both}.items()}
    assert macs["both"] < min(macs["cache"], macs["skip"]) <= max(macs["cache"], macs["skip"]) < macs["full"]


def test_the_config_side_imports_without_torch():
    code = ("import sys; import evaluators.plan, evaluators.families, evaluators.techniques; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def model_ref_stub():
    from evaluators.plan import ModelRef

    return ModelRef("digits-unet", "UNet2DModel")
