"""Plan files are strict JSON: UTF-8, bounded size and depth, finite numbers, no lone surrogates;
each refusal is one PlanError line, and what reads can be written, stored and read back."""

from __future__ import annotations

import json
import math

import pytest

from evaluators.jsonread import MAX_DEPTH, JSONInputError, dumps_strict, loads_strict
from evaluators.plan import MAX_PLAN_BYTES, ModelRef, Plan, PlanError, Sampling

UNET = ModelRef("digits-unet", "UNet2DModel")


def _plan_text(notes: str = "{}") -> str:
    return ('{"format": "edgediff-plan", "version": 1, "model": {"name": "digits-unet", '
            '"model_class": "UNet2DModel"}, "sampling": {"num_inference_steps": 4, '
            f'"guidance_scale": 1.5}}, "notes": {notes}}}')


@pytest.mark.parametrize("data, needle", [
    (bytes(range(128, 256)) * 3, "not UTF-8 text"),
    (_plan_text().encode("utf-16"), "not UTF-8 text"),
    (_plan_text('{"who": "Jos\u00e9"}').encode("latin-1"), "not UTF-8 text"),
    (_plan_text('{"n": ' + "9" * 5000 + "}").encode(), "an integer of 5,000 digits"),
    (("[" * 100_000 + "]" * 100_000).encode(), "nests 100000 levels deep"),
    (_plan_text('{"x": NaN}').encode(), "NaN is not a JSON number"),
    (_plan_text('{"x": Infinity}').encode(), "Infinity is not a JSON number"),
    (_plan_text('{"x": -Infinity}').encode(), "-Infinity is not a JSON number"),
    (_plan_text('{"x": 1e400}').encode(), "too large for a finite number"),
    (_plan_text('{"x": "\\ud800"}').encode(), "lone UTF-16 surrogate"),
    (_plan_text('{"\\udfff": 1}').encode(), "lone UTF-16 surrogate"),
    (_plan_text('{"x": ["ok", {"y": "a\\udc80b"}]}').encode(), "lone UTF-16 surrogate"),
    (b" " * (MAX_PLAN_BYTES + 1), "over the limit"),
    (b"", "not valid JSON"),
])
def test_undecodable_and_non_strict_plans_are_one_plan_error(tmp_path, data, needle):
    path = tmp_path / "plan.json"
    path.write_bytes(data)
    with pytest.raises(PlanError) as err:
        Plan.load(path)
    assert needle in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(PlanError):  # the same text from memory (the store, the dashboard)
        Plan.from_json(data)


def test_strict_json_reads_what_it_writes():
    plan = Plan.from_json(_plan_text('{"who": "Jos\u00e9 \u2713", "pair": "\\ud83d\\ude00"}'))
    assert plan.notes["pair"] == "\U0001f600"  # a surrogate pair is one character, accepted
    assert Plan.from_json(plan.to_json()).notes == plan.notes
    assert Plan.from_json("\ufeff" + plan.to_json()) == plan  # a BOM is tolerated


def test_depth_counts_only_brackets_outside_strings():
    assert loads_strict('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}') == {"a": "[" * 38}
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(JSONInputError, match="nests"):
        loads_strict(deep)
    assert loads_strict("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


@pytest.mark.parametrize("notes", [{"x": math.nan}, {"x": math.inf}, {"x": "\ud800"}, {"\udfff": 1}])
def test_a_plan_holding_nan_or_a_surrogate_cannot_be_written(tmp_path, notes):
    plan = Plan(UNET, Sampling(4, 1.5), notes=notes)
    with pytest.raises(PlanError):
        plan.to_json()
    with pytest.raises(PlanError):
        plan.save(tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()
    with pytest.raises(JSONInputError):
        dumps_strict(notes)


def test_saving_over_a_folder_is_one_line(tmp_path):
    with pytest.raises(PlanError, match="is a folder"):
        Plan(UNET, Sampling(4, 1.5)).save(tmp_path)
    with pytest.raises(PlanError, match="is a folder"):
        Plan.load(tmp_path)


def test_ordinary_json_is_unchanged():
    text = json.dumps({"a": [1, 2.5, -3, None, True, "x"], "b": {"c": 1e-300}})
    assert loads_strict(text) == json.loads(text)
