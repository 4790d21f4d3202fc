"""The plan schema (evaluators.plan): JSON round trip, validation messages, and the step semantics
that the runtime reads from a plan (wars residuals, ast outputs, DeepCache full steps)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import pickle
from types import MappingProxyType

import pytest

from evaluators.plan import (
    PLAN_FORMAT,
    PLAN_VERSION,
    AttentionPlan,
    DeepCache,
    DepthSkip,
    ModelRef,
    Plan,
    PlanError,
    Sampling,
    config_fingerprint,
    full_plan,
    output_needed,
    residual_needed,
)

STEPS = 4
DIT = ModelRef("digits-dit", "DiTTransformer2DModel", "0123456789abcdef")
UNET = ModelRef("digits-unet", "UNet2DModel")

# Three self-attention layers x STEPS steps, every method used at least once, step 0 full.
ROWS = (
    ("full", "wars", "ast", "full+asc"),
    ("full", "asc", "wars+asc", "wars"),
    ("full", "ast", "full", "ast"),
)


# --- building plans and plan documents ------------------------------------------------------------

def _attention_plan(rows=ROWS, left: int = 8, right: int = 16, guidance: float = 4.0) -> Plan:
    return Plan(DIT, Sampling(len(rows[0]), guidance), attention=AttentionPlan(rows, left, right))


def _unet_plan(deepcache: DeepCache | None = None, depth_skip: DepthSkip | None = None,
               steps: int = 10, **sampling) -> Plan:
    return Plan(UNET, Sampling(steps, 3.0, **sampling), deepcache=deepcache, depth_skip=depth_skip)


def _doc(model: ModelRef = DIT, **sections) -> dict:
    """A valid plan document; `sampling` entries given here are merged into the defaults."""
    sampling = {"num_inference_steps": STEPS, "guidance_scale": 4.0, **sections.pop("sampling", {})}
    doc = {"format": PLAN_FORMAT, "version": PLAN_VERSION,
           "model": {"name": model.name, "model_class": model.model_class},
           "sampling": sampling}
    doc.update(sections)
    return doc


def _methods(layer: int | None = None, row: list | None = None) -> dict:
    """The attention section of ROWS, with `row` in place of layer `layer`."""
    rows = [list(r) for r in ROWS]
    if layer is not None:
        rows[layer] = row
    return {"methods": rows, "window": {"left": 8, "right": 8}}


def _without(doc: dict, *path: str) -> dict:
    inner = doc
    for key in path[:-1]:
        inner = inner[key]
    del inner[path[-1]]
    return doc


# --- 1. round trip and content hash ---------------------------------------------------------------

ROUND_TRIP = [
    pytest.param(_attention_plan(), id="attention-window"),
    pytest.param(full_plan(DIT, 6, 1.0, num_attention_layers=2), id="full-plan-attention"),
    pytest.param(full_plan(UNET, 6, 1.0), id="full-plan-unet"),
    pytest.param(_unet_plan(DeepCache(2, 3)), id="deepcache-uniform"),
    pytest.param(_unet_plan(DeepCache(0, 5, "nonuniform", center=4, power=1.4), steps=20),
                 id="deepcache-nonuniform"),
    pytest.param(_unet_plan(DeepCache(3, 1, "explicit", full_steps=(0, 2, 3, 7))), id="deepcache-explicit"),
    pytest.param(_unet_plan(depth_skip=DepthSkip(1)), id="depth-skip"),
    pytest.param(_unet_plan(DeepCache(1, 2), DepthSkip(2)), id="deepcache-and-depth-skip"),
    pytest.param(_unet_plan(scheduler="DDIMScheduler", spacing="gamma", gamma=1.5), id="gamma-spacing"),
]


@pytest.mark.parametrize("plan", ROUND_TRIP)
def test_round_trip_through_json(plan):
    again = Plan.from_json(plan.to_json())
    assert again == plan
    assert again.to_dict() == plan.to_dict()
    assert again.content_hash() == plan.content_hash()
    # Compact JSON reads back the same.
    assert Plan.from_json(plan.to_json(indent=None)) == plan


def test_round_trip_keeps_every_field():
    plan = Plan(DIT, Sampling(STEPS, 4.0, "DPMSolverMultistepScheduler"),
                attention=AttentionPlan(ROWS, window_left=3, window_right=0),
                notes={"macs": 1.5e9, "fid": 12.0})
    doc = json.loads(plan.to_json())
    assert doc["format"] == PLAN_FORMAT and doc["version"] == PLAN_VERSION
    assert doc["attention"]["window"] == {"left": 3, "right": 0}
    assert doc["attention"]["methods"][1] == list(ROWS[1])
    again = Plan.from_json(plan.to_json())
    assert again.model.fingerprint == DIT.fingerprint
    assert again.sampling.scheduler == "DPMSolverMultistepScheduler"
    assert (again.attention.window_left, again.attention.window_right) == (3, 0)
    assert again.attention.methods == ROWS
    assert again.notes == plan.notes  # notes do not take part in ==, so check them on their own


def test_sections_left_out_read_back_as_none():
    plan = Plan.from_json(json.dumps(_doc(UNET, deepcache={"branch": 2})))
    assert plan.deepcache == DeepCache(2)  # interval 1, uniform schedule
    assert plan.attention is None and plan.depth_skip is None
    assert plan.sampling == Sampling(STEPS, 4.0, "DDIMScheduler", "uniform", None)
    assert plan.notes == {}


def test_attention_window_defaults_when_left_out():
    plan = Plan.from_dict(_doc(attention={"methods": [list(r) for r in ROWS]}))
    assert (plan.attention.window_left, plan.attention.window_right) == (32, 32)


def test_full_plan_runs_every_layer_full_at_every_step():
    plan = full_plan(DIT, 5, 2.0, num_attention_layers=3)
    assert plan.num_steps == 5
    assert plan.attention.num_layers == 3
    assert plan.attention.methods == (("full",) * 5,) * 3
    assert plan.deepcache is None and plan.depth_skip is None
    assert full_plan(UNET, 5, 2.0).attention is None


def test_equal_plans_have_equal_hashes():
    assert _attention_plan().content_hash() == _attention_plan().content_hash()
    assert (_unet_plan(DeepCache(2, 3)).content_hash()
            == Plan.from_dict(_doc(UNET, sampling={"num_inference_steps": 10, "guidance_scale": 3.0},
                                   deepcache={"interval": 3, "branch": 2})).content_hash())


def _one_method_changed() -> Plan:
    rows = [list(r) for r in ROWS]
    rows[2][3] = "full"  # was ast
    return _attention_plan(tuple(map(tuple, rows)))


HASH_CHANGES = [
    pytest.param(_attention_plan(), _one_method_changed(), id="one-method"),
    pytest.param(_attention_plan(), _attention_plan(left=9), id="window-left"),
    pytest.param(_attention_plan(), _attention_plan(right=15), id="window-right"),
    pytest.param(_attention_plan(), _attention_plan(guidance=4.5), id="guidance"),
    pytest.param(_attention_plan(), Plan(ModelRef(DIT.name, DIT.model_class, "ffffffffffffffff"),
                                         Sampling(STEPS, 4.0), attention=AttentionPlan(ROWS, 8, 16)),
                 id="fingerprint"),
    pytest.param(_unet_plan(DeepCache(2, 3)), _unet_plan(DeepCache(2, 4)), id="interval"),
    pytest.param(_unet_plan(DeepCache(2, 3)), _unet_plan(DeepCache(1, 3)), id="branch"),
    pytest.param(_unet_plan(DeepCache(2, 3)), _unet_plan(DeepCache(2, 3), steps=11), id="steps"),
    pytest.param(_unet_plan(DeepCache(2, 3)), _unet_plan(DeepCache(2, 3), DepthSkip(1)), id="depth-skip"),
    pytest.param(_unet_plan(DeepCache(2, 1, "explicit", full_steps=(0, 4))),
                 _unet_plan(DeepCache(2, 1, "explicit", full_steps=(0, 5))), id="explicit-steps"),
    pytest.param(_unet_plan(spacing="gamma", gamma=1.5), _unet_plan(spacing="gamma", gamma=2.0), id="gamma"),
]


@pytest.mark.parametrize(("plan", "other"), HASH_CHANGES)
def test_hash_changes_with_what_the_plan_does(plan, other):
    assert plan != other
    assert plan.content_hash() != other.content_hash()


def test_hash_and_equality_ignore_notes():
    plan = _attention_plan()
    noted = Plan(plan.model, plan.sampling, attention=plan.attention, notes={"fid": 3.2, "by": "search"})
    assert noted == plan
    assert noted.content_hash() == plan.content_hash()
    assert Plan.from_json(noted.to_json()).content_hash() == plan.content_hash()
    assert json.loads(noted.to_json())["notes"] == {"fid": 3.2, "by": "search"}


def test_json_and_hash_are_computed_once_and_stay_outside_the_fields(monkeypatch):
    plan = _attention_plan()
    first = (plan.to_json(), plan.content_hash())
    calls = []
    monkeypatch.setattr(Plan, "to_dict", lambda self: calls.append(self) or {})
    assert (plan.to_json(), plan.content_hash()) == first  # from the cache: to_dict not called
    assert calls == []
    monkeypatch.undo()
    assert plan == _attention_plan()  # the cache is not a field: equality and hash unchanged
    assert hash(plan) == hash(_attention_plan())
    assert plan.to_json(indent=None) == json.dumps(json.loads(first[0]))
    changed = dataclasses.replace(plan, sampling=Sampling(STEPS, 5.0))
    assert changed.content_hash() != first[1]  # a new object: its own identity
    assert pickle.loads(pickle.dumps(plan)).content_hash() == first[1]


@pytest.mark.parametrize("plan", [
    pytest.param(full_plan(DIT, STEPS, 4, num_attention_layers=2), id="int-guidance"),
    pytest.param(_unet_plan(spacing="gamma", gamma=2), id="int-gamma"),
    pytest.param(_unet_plan(DeepCache(1, 5, "nonuniform", center=4, power=2), steps=20), id="int-power"),
])
def test_hash_survives_round_trip_of_whole_numbers(plan):
    again = Plan.from_json(plan.to_json())
    assert again == plan
    assert again.content_hash() == plan.content_hash()


def test_save_and_load(tmp_path):
    plan = Plan(DIT, Sampling(STEPS, 4.0), attention=AttentionPlan(ROWS, 4, 4), notes={"fid": 9.5})
    path = plan.save(tmp_path / "plan.json")
    assert path == tmp_path / "plan.json" and path.is_file()
    loaded = Plan.load(path)
    assert loaded == plan
    assert loaded.notes == {"fid": 9.5}
    assert loaded.content_hash() == plan.content_hash()
    assert Plan.load(str(path)) == plan


# --- 2. invalid plans -----------------------------------------------------------------------------

def _asc_without_cfg(method: str) -> dict:
    """Layer 1 shares CFG halves at step 1; every other entry is plain `full`."""
    rows = [["full"] * STEPS, ["full", method, "full", "full"], ["full"] * STEPS]
    return _doc(sampling={"guidance_scale": 1.0}, attention={"methods": rows})


def _deepcache(**fields) -> dict:
    return _doc(UNET, deepcache={"branch": 2, **fields})


INVALID = [
    # attention
    pytest.param(_doc(attention=_methods(2, ["window", "full", "full", "full"])),
                 "attention.methods[2][0]", "'window'", "use one of full, wars", id="unknown-method"),
    pytest.param(_doc(attention=_methods(1, ["full", "full", "full", "skip"])),
                 "attention.methods[1][3]", "'skip'", "use one of", id="unknown-method-late-step"),
    pytest.param(_doc(attention=_methods(1, ["full", "wars", "ast"])),
                 "attention.methods[1]", f"expected {STEPS} methods", "one method per inference step",
                 id="short-row"),
    pytest.param(_doc(attention=_methods(0, ["full"] * (STEPS + 1))),
                 "attention.methods[0]", f"got {STEPS + 1}", "one method per inference step", id="long-row"),
    pytest.param(_doc(attention=_methods(2, "full")),
                 "attention.methods[2]", "str", "one method per inference step", id="row-not-a-list"),
    pytest.param(_doc(attention={"methods": []}),
                 "attention.methods", "one list of methods per layer", "methods[layer][step]",
                 id="no-layers"),
    pytest.param(_doc(attention=_methods(0, ["wars", "full", "full", "full"])),
                 "attention.methods[0][0]", "'wars'", "set it to 'full'", id="step0-wars"),
    pytest.param(_doc(attention=_methods(1, ["ast", "full", "full", "full"])),
                 "attention.methods[1][0]", "'ast'", "set it to 'full'", id="step0-ast"),
    pytest.param(_asc_without_cfg("asc"),
                 "attention.methods[1][1]", "guidance_scale is 1", "raise guidance_scale", id="asc-no-cfg"),
    pytest.param(_asc_without_cfg("wars+asc"),
                 "attention.methods[1][1]", "'wars+asc'", "raise guidance_scale", id="wars+asc-no-cfg"),
    pytest.param(_asc_without_cfg("full+asc"),
                 "attention.methods[1][1]", "'full+asc'", "raise guidance_scale", id="full+asc-no-cfg"),
    pytest.param(_doc(attention={**_methods(), "window": {"left": -1, "right": 8}}),
                 "attention.window.left", "-1", "use a value >= 0", id="negative-window"),
    pytest.param(_doc(attention={**_methods(), "window": {"left": 8}}),
                 "attention.window", "'right'", "add them", id="window-half"),
    pytest.param(_doc(attention=_methods(), deepcache={"branch": 1}),
                 "attention", "U-Net sections", "'deepcache'", id="attention-and-deepcache"),
    pytest.param(_doc(attention=_methods(), depth_skip={"drop_levels": 1}),
                 "attention", "U-Net sections", "'depth_skip'", id="attention-and-depth-skip"),
    # top level
    pytest.param(_doc(extra=1), "(top level)", "'extra'", "allowed fields are", id="unknown-field"),
    pytest.param(_without(_doc(), "sampling"), "(top level)", "'sampling'", "add them", id="no-sampling"),
    pytest.param(_without(_doc(), "format"), "(top level)", "'format'", "add them", id="no-format"),
    pytest.param([_doc()], "(top level)", "list", "docs", id="list-at-top"),
    pytest.param({**_doc(), "format": "edgediff-plan-v2"},
                 "format", "'edgediff-plan-v2'", f'"format": "{PLAN_FORMAT}"', id="wrong-format"),
    pytest.param({**_doc(), "version": PLAN_VERSION + 1},
                 "version", f"version {PLAN_VERSION + 1} is newer", "upgrade edgediff", id="newer-version"),
    pytest.param({**_doc(), "version": 0}, "version", "positive integer", "use 1", id="version-0"),
    pytest.param({**_doc(), "version": "1"}, "version", "'1'", "use 1", id="version-string"),
    pytest.param({**_doc(), "notes": ["fid"]}, "notes", "list", "{}", id="notes-list"),
    # model
    pytest.param(_without(_doc(), "model", "model_class"), "model", "'model_class'", "add them",
                 id="no-model-class"),
    pytest.param(_doc(model=ModelRef("", "UNet2DModel")), "model.name", "''", "write a name",
                 id="empty-model-name"),
    pytest.param({**_doc(), "model": {"name": "m", "model_class": "C", "fingerprint": 7}},
                 "model.fingerprint", "7", "leave it out", id="fingerprint-int"),
    # sampling
    pytest.param(_without(_doc(), "sampling", "guidance_scale"), "sampling", "'guidance_scale'",
                 "add them", id="no-guidance"),
    pytest.param(_doc(sampling={"num_inference_steps": 50.5}), "sampling.num_inference_steps", "50.5",
                 "whole number", id="steps-float"),
    pytest.param(_doc(sampling={"num_inference_steps": "50"}), "sampling.num_inference_steps", "'50'",
                 "whole number", id="steps-string"),
    pytest.param(_doc(sampling={"num_inference_steps": True}), "sampling.num_inference_steps", "True",
                 "whole number", id="steps-bool"),
    pytest.param(_doc(sampling={"num_inference_steps": 0}), "sampling.num_inference_steps", "0",
                 "use a value in 1..", id="steps-zero"),
    pytest.param(_doc(sampling={"guidance_scale": 0.5}), "sampling.guidance_scale", "0.5",
                 "use a value in [1.0", id="guidance-below-1"),
    pytest.param(_doc(sampling={"guidance_scale": "4"}), "sampling.guidance_scale", "'4'",
                 "finite number", id="guidance-string"),
    pytest.param(_doc(sampling={"spacing": "karras"}), "sampling.spacing", "'karras'", "uniform, gamma",
                 id="unknown-spacing"),
    pytest.param(_doc(sampling={"spacing": "gamma"}), "sampling.gamma", "without a gamma", '"gamma"',
                 id="gamma-spacing-no-gamma"),
    pytest.param(_doc(sampling={"spacing": "gamma", "gamma": 0.0}), "sampling.gamma", "out of range",
                 "use a value in", id="gamma-out-of-range"),
    pytest.param(_doc(sampling={"spacing": "uniform", "gamma": 1.5}), "sampling.gamma", "uniform spacing",
                 '"spacing": "gamma"', id="gamma-with-uniform"),
    pytest.param(_doc(sampling={"gamma": 1.5}), "sampling.gamma", "uniform spacing", "drop gamma",
                 id="gamma-with-default-spacing"),
    # deepcache
    pytest.param(_deepcache(interval=-1), "deepcache.interval", "-1", f"use a value in 1..{STEPS}",
                 id="interval-negative"),
    pytest.param(_deepcache(interval=0), "deepcache.interval", "0", f"use a value in 1..{STEPS}",
                 id="interval-zero"),
    pytest.param(_deepcache(interval=STEPS + 1), "deepcache.interval", f"{STEPS + 1}",
                 f"use a value in 1..{STEPS}", id="interval-above-steps"),
    pytest.param(_deepcache(branch=-1), "deepcache.branch", "-1", "use a value >= 0", id="branch-negative"),
    pytest.param(_without(_deepcache(), "deepcache", "branch"), "deepcache", "'branch'", "add them",
                 id="no-branch"),
    pytest.param(_deepcache(schedule="random"), "deepcache.schedule", "'random'", "nonuniform",
                 id="unknown-schedule"),
    pytest.param(_deepcache(schedule="nonuniform", power=1.4), "deepcache.center", "center and power",
                 '"center"', id="nonuniform-no-center"),
    pytest.param(_deepcache(schedule="nonuniform", center=1), "deepcache.power", "center and power",
                 '"power"', id="nonuniform-no-power"),
    pytest.param(_deepcache(schedule="nonuniform", center=STEPS, power=1.4), "deepcache.center",
                 f"{STEPS}", f"use a value in 0..{STEPS - 1}", id="nonuniform-center-out-of-range"),
    pytest.param(_deepcache(schedule="explicit", full_steps=[1, 2]), "deepcache.full_steps", "[1, 2]",
                 "starting with 0", id="explicit-not-from-0"),
    pytest.param(_deepcache(schedule="explicit", full_steps=[0, 2, 1]), "deepcache.full_steps",
                 "not increasing", "in order", id="explicit-decreasing"),
    pytest.param(_deepcache(schedule="explicit", full_steps=[0, 2, 2]), "deepcache.full_steps",
                 "not increasing", "distinct", id="explicit-repeated"),
    pytest.param(_deepcache(schedule="explicit", full_steps=[0, STEPS]), "deepcache.full_steps",
                 f"below {STEPS}", f"0..{STEPS - 1}", id="explicit-out-of-range"),
    pytest.param(_deepcache(schedule="explicit"), "deepcache.full_steps", "None", "starting with 0",
                 id="explicit-no-steps"),
    pytest.param(_deepcache(schedule="explicit", full_steps=[]), "deepcache.full_steps", "[]",
                 "starting with 0", id="explicit-empty"),
    pytest.param(_deepcache(schedule="explicit", full_steps=[0, 1.5]), "deepcache.full_steps", "1.5",
                 "starting with 0", id="explicit-float-step"),
    pytest.param(_deepcache(full_steps=[0, 2]), "deepcache.full_steps", "without an explicit schedule",
                 '"schedule": "explicit"', id="full-steps-without-explicit"),
    # depth skip
    pytest.param(_doc(UNET, depth_skip={"drop_levels": 0}), "depth_skip.drop_levels", "0",
                 "use a value >= 1", id="drop-levels-zero"),
]


def _split(message: str, where: str) -> tuple[str, str]:
    """Check the `plan.<where>: <problem>; <fix>` layout and return (problem, fix)."""
    assert "\n" not in message, message
    prefix = f"plan.{where}: "
    assert message.startswith(prefix), message
    problem, sep, fix = message[len(prefix):].rpartition("; ")
    assert sep and problem.strip() and fix.strip(), message
    return problem, fix


@pytest.mark.parametrize(("doc", "where", "problem", "fix"), INVALID)
def test_invalid_plan_names_the_field_and_the_fix(doc, where, problem, fix):
    with pytest.raises(PlanError) as err:
        Plan.from_json(json.dumps(doc))
    got_problem, got_fix = _split(str(err.value), where)
    assert problem in got_problem
    assert fix in got_fix


@pytest.mark.parametrize(("doc", "where"), [pytest.param(*case.values[:2], id=case.id) for case in INVALID])
def test_from_dict_rejects_the_same_and_leaves_the_document_alone(doc, where):
    before = copy.deepcopy(doc)
    with pytest.raises(PlanError) as err:
        Plan.from_dict(doc)
    _split(str(err.value), where)
    assert doc == before


@pytest.mark.parametrize(("text", "line", "column"), [
    pytest.param('{\n  "format": "edgediff-plan",\n  "version": 1,\n}', 4, 1, id="trailing-comma"),
    pytest.param('{"format": "edgediff-plan" "version": 1}', 1, 28, id="missing-comma"),
    pytest.param("", 1, 1, id="empty"),
])
def test_invalid_json_names_line_and_column(text, line, column):
    with pytest.raises(PlanError) as err:
        Plan.from_json(text)
    message = str(err.value)
    assert "\n" not in message
    assert "not valid JSON" in message
    assert f"line {line}, column {column}" in message


def test_load_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"format": ')
    with pytest.raises(PlanError) as err:
        Plan.load(path)
    assert str(err.value).startswith(f"{path} is not valid JSON")

    path.write_text(json.dumps({**_doc(), "version": PLAN_VERSION + 1}))
    with pytest.raises(PlanError, match="upgrade edgediff"):
        Plan.load(path)


def test_load_of_a_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "plan.json"
    with pytest.raises(PlanError) as err:
        Plan.load(path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    assert "No such file" in message


def test_every_method_accepted_with_cfg():
    plan = Plan.from_dict(_doc(attention=_methods()))
    assert plan.attention.methods == ROWS


def test_full_rows_accepted_without_cfg():
    rows = [["full", "wars", "ast", "full"]] * 2
    plan = Plan.from_dict(_doc(sampling={"guidance_scale": 1.0}, attention={"methods": rows}))
    assert plan.sampling.guidance_scale == 1.0
    assert plan.attention.num_layers == 2


# --- 3. step semantics ----------------------------------------------------------------------------

@pytest.mark.parametrize(("row", "step", "expected"), [
    pytest.param(["full", "wars", "full"], 0, True, id="wars-next"),
    pytest.param(["full", "wars+asc"], 0, True, id="wars+asc-next"),
    pytest.param(["full", "ast", "wars"], 0, True, id="ast-between"),
    pytest.param(["full", "ast", "ast", "wars+asc"], 0, True, id="two-ast-between"),
    pytest.param(["full", "full", "wars"], 0, False, id="full-first"),
    pytest.param(["full", "full", "wars"], 1, True, id="second-full-refreshes"),
    pytest.param(["full", "asc", "wars"], 0, False, id="asc-first"),
    pytest.param(["full", "full+asc", "wars"], 0, False, id="full+asc-first"),
    pytest.param(["full", "ast", "full", "wars"], 0, False, id="full-after-ast"),
    pytest.param(["full", "wars", "asc", "wars"], 2, True, id="asc-refreshes"),
    pytest.param(["full", "wars", "full+asc", "ast"], 2, False, id="no-wars-after"),
    pytest.param(["full", "ast", "ast"], 0, False, id="only-ast-after"),
    pytest.param(["full"], 0, False, id="last-step"),
    pytest.param(["full", "wars", "wars"], 1, False, id="wars-step"),
    pytest.param(["full", "ast", "wars"], 1, False, id="ast-step"),
    pytest.param(["full", "wars+asc", "wars"], 1, False, id="wars+asc-step"),
])
def test_residual_needed(row, step, expected):
    assert residual_needed(row, step) is expected


@pytest.mark.parametrize(("row", "step", "expected"), [
    pytest.param(["full", "ast"], 0, True, id="full-then-ast"),
    pytest.param(["full", "wars", "ast"], 1, True, id="wars-then-ast"),
    pytest.param(["full", "asc", "ast"], 1, True, id="asc-then-ast"),
    pytest.param(["full", "ast", "ast"], 1, False, id="ast-then-ast"),
    pytest.param(["full", "ast"], 1, False, id="last-step"),
    pytest.param(["full", "wars"], 0, False, id="next-wars"),
    pytest.param(["full", "full", "ast"], 0, False, id="ast-two-steps-later"),
])
def test_output_needed(row, step, expected):
    assert output_needed(row, step) is expected


def test_attention_plan_asks_the_right_layer():
    plan = AttentionPlan((("full", "wars", "ast"), ("full", "ast", "full")))
    assert plan.num_layers == 2
    assert [plan.needs_residual(0, s) for s in range(3)] == [True, False, False]
    assert [plan.needs_residual(1, s) for s in range(3)] == [False, False, False]
    assert [plan.needs_output(0, s) for s in range(3)] == [False, True, False]
    assert [plan.needs_output(1, s) for s in range(3)] == [True, False, False]


@pytest.mark.parametrize(("steps", "interval"), [(10, 1), (10, 3), (50, 5), (7, 7), (20, 6)])
def test_uniform_full_steps(steps, interval):
    assert DeepCache(2, interval).full_step_indices(steps) == tuple(range(0, steps, interval))


def test_uniform_full_steps_by_hand():
    assert DeepCache(2, 3).full_step_indices(10) == (0, 3, 6, 9)
    assert DeepCache(2).full_step_indices(4) == (0, 1, 2, 3)


def test_explicit_full_steps_are_the_list():
    assert DeepCache(1, 1, "explicit", full_steps=(0, 4, 5, 9)).full_step_indices(10) == (0, 4, 5, 9)
    plan = Plan.from_dict(_deepcache(schedule="explicit", full_steps=[0, 3]))
    assert plan.deepcache.full_step_indices(plan.num_steps) == (0, 3)


NONUNIFORM = [
    pytest.param(50, 5, 15, 1.4, id="T50-N5-c15"),
    pytest.param(50, 3, 20, 1.5, id="T50-N3-c20"),
    pytest.param(100, 10, 40, 1.2, id="T100-N10-c40"),
    pytest.param(20, 4, 5, 2.0, id="T20-N4-c5"),
    pytest.param(30, 2, 10, 1.8, id="T30-N2-c10"),
    pytest.param(250, 10, 100, 1.3, id="T250-N10-c100"),
    pytest.param(50, 5, 0, 1.4, id="center-at-start"),
    pytest.param(50, 5, 49, 1.4, id="center-at-end"),
]


def _check_nonuniform(steps: int, interval: int, full: tuple[int, ...]) -> None:
    assert len(full) == math.ceil(steps / interval), full
    assert full[0] == 0
    assert list(full) == sorted(set(full))
    assert full[-1] < steps


@pytest.mark.parametrize(("steps", "interval", "center", "power"), NONUNIFORM)
def test_nonuniform_full_steps_count_and_range(steps, interval, center, power):
    full = DeepCache(3, interval, "nonuniform", center, power).full_step_indices(steps)
    _check_nonuniform(steps, interval, full)


@pytest.mark.parametrize(("steps", "interval", "center", "power"), NONUNIFORM)
def test_nonuniform_full_steps_crowd_around_center(steps, interval, center, power):
    full = DeepCache(3, interval, "nonuniform", center, power).full_step_indices(steps)
    gaps = [(b - a, a, b) for a, b in zip(full[:-1], full[1:], strict=True)]
    smallest = min(gap for gap, _, _ in gaps)
    # The tightest spacing is found at the center ...
    at_center = [gap for gap, a, b in gaps if a <= center <= b]
    assert at_center and min(at_center) == smallest, full
    # ... and the gaps far from it (the outer quarter of the pairs) are wider than there.
    far = sorted(gaps, key=lambda g: -abs((g[1] + g[2]) / 2 - center))[: max(1, len(gaps) // 4)]
    assert all(gap > smallest for gap, _, _ in far), full


def test_nonuniform_read_from_a_plan():
    doc = _doc(UNET, sampling={"num_inference_steps": 50},
               deepcache={"branch": 3, "interval": 5, "schedule": "nonuniform", "center": 15, "power": 1.4})
    plan = Plan.from_dict(doc)
    assert plan.deepcache.full_step_indices(plan.num_steps) == \
        DeepCache(3, 5, "nonuniform", 15, 1.4).full_step_indices(50)
    _check_nonuniform(50, 5, plan.deepcache.full_step_indices(plan.num_steps))


@pytest.mark.parametrize(("steps", "interval", "center", "power"), [
    pytest.param(50, 5, 15, 1.0, id="power-1"),
    pytest.param(50, 2, 25, 1.5, id="T50-N2-c25"),
    pytest.param(10, 1, 5, 1.4, id="interval-1"),
])
def test_nonuniform_schedules_that_cannot_be_placed_are_rejected(steps, interval, center, power):
    doc = _doc(UNET, sampling={"num_inference_steps": steps},
               deepcache={"branch": 3, "interval": interval, "schedule": "nonuniform",
                          "center": center, "power": power})
    with pytest.raises(PlanError, match=r"^plan\.deepcache"):
        Plan.from_dict(doc)


# --- 4. config fingerprint ------------------------------------------------------------------------

CONFIG = {
    "sample_size": 16,
    "in_channels": 1,
    "num_layers": 4,
    "block_out_channels": [32, 64],
    "norm_type": "ada_norm_zero",
    "_name_or_path": "/models/digits-dit",
    "_diffusers_version": "0.35.0",
}


def test_fingerprint_is_stable():
    first = config_fingerprint("DiTTransformer2DModel", CONFIG)
    assert first == config_fingerprint("DiTTransformer2DModel", dict(CONFIG))
    assert first == config_fingerprint("DiTTransformer2DModel", dict(reversed(list(CONFIG.items()))))
    assert first == config_fingerprint("DiTTransformer2DModel", MappingProxyType(dict(CONFIG)))
    assert first == config_fingerprint("DiTTransformer2DModel", {**CONFIG, "block_out_channels": (32, 64)})
    assert isinstance(first, str) and first and all(c in "0123456789abcdef" for c in first)


@pytest.mark.parametrize("changes", [
    pytest.param({"_name_or_path": "/elsewhere/copy"}, id="path"),
    pytest.param({"_diffusers_version": "0.49.0"}, id="diffusers-version"),
    pytest.param({"_use_default_values": ["norm_type"]}, id="defaults-list"),
    pytest.param({"_commit_hash": "abc123"}, id="commit"),
])
def test_fingerprint_ignores_bookkeeping(changes):
    base = config_fingerprint("DiTTransformer2DModel", CONFIG)
    assert config_fingerprint("DiTTransformer2DModel", {**CONFIG, **changes}) == base
    bare = {k: v for k, v in CONFIG.items() if not k.startswith("_")}
    assert config_fingerprint("DiTTransformer2DModel", bare) == base


@pytest.mark.parametrize("changes", [
    pytest.param({"num_layers": 5}, id="num-layers"),
    pytest.param({"sample_size": 32}, id="sample-size"),
    pytest.param({"block_out_channels": [32, 128]}, id="channels"),
    pytest.param({"norm_type": "layer_norm"}, id="norm"),
    pytest.param({"attention_head_dim": 8}, id="new-key"),
])
def test_fingerprint_changes_with_the_architecture(changes):
    assert (config_fingerprint("DiTTransformer2DModel", {**CONFIG, **changes})
            != config_fingerprint("DiTTransformer2DModel", CONFIG))


def test_fingerprint_changes_with_the_class():
    assert (config_fingerprint("UNet2DModel", CONFIG)
            != config_fingerprint("DiTTransformer2DModel", CONFIG))


def test_fingerprint_leaves_the_config_alone():
    config = dict(CONFIG)
    config_fingerprint("DiTTransformer2DModel", config)
    assert config == CONFIG
