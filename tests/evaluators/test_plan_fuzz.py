"""Fuzzed plan files (hypothesis): whatever the document, reading it gives a Plan or one PlanError
line naming the problem (never another exception), a plan that reads also fits the model or says
why not, and `edgediff evaluate` with a malformed plan exits 2 having written nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluators.plan import Plan, PlanError
from evaluators.runtime import check_plan_fits
from evaluators.templates import uniform_plan

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])


def _read(text: str) -> Plan | None:
    """The plan, or None after checking the error is one PlanError line."""
    try:
        return Plan.from_json(text, source="fuzz.json")
    except PlanError as err:
        message = str(err)
        assert message and "\n" not in message and "Traceback" not in message
        return None


@pytest.fixture(scope="module")
def valid(dit, unet) -> dict[str, Any]:
    """Real plans of the shipped models, as documents to break."""
    return {
        "dit": (dit, uniform_plan("digits-dit", dit, steps=6, guidance_scale=1.5, attention="wars+asc")),
        "unet": (unet, uniform_plan("digits-unet", unet, steps=6, guidance_scale=1.5,
                                    deepcache_branch=3, interval=2, gamma=1.5)),
    }


@FUZZ
@given(document=JSON)
def test_any_json_document(document) -> None:
    _read(json.dumps(document))


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_text(text) -> None:
    _read(text)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a JSON document (keys and list indices)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _mutate(document: Any, path: tuple, action: str, new: Any) -> Any:
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "replace":
        parent[last] = new
    elif action == "delete" and isinstance(parent, dict):
        del parent[last]
    elif action == "delete":
        parent.pop(last)
    elif isinstance(parent, dict):  # "add": an unknown key beside it
        parent[f"{last}_extra"] = new
    else:
        parent.insert(last, new)
    return document


@FUZZ
@given(which=st.sampled_from(["dit", "unet"]), data=st.data(),
       action=st.sampled_from(["replace", "delete", "add"]), new=JSON)
def test_broken_real_plans(valid, which, data, action, new) -> None:
    model, plan = valid[which]
    document = plan.to_dict()
    path = data.draw(st.sampled_from(_paths(document)))
    parsed = _read(json.dumps(_mutate(document, path, action, new)))
    if parsed is None:
        return
    assert Plan.from_dict(parsed.to_dict()) == parsed  # what reads, writes back the same
    try:
        check_plan_fits(model, parsed)
    except PlanError as err:
        assert "\n" not in str(err)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=JSON)
def test_evaluate_refuses_a_malformed_plan_and_writes_nothing(tmp_path_factory, capsys, document) -> None:
    from edgediff.cli import main

    folder = tmp_path_factory.mktemp("fuzz")
    plan = folder / "plan.json"
    plan.write_text(json.dumps(document))
    store = folder / "store.db"
    code = main(["evaluate", "--model", "digits-dit", "--plan", str(plan), "--db", f"sqlite:///{store}",
                 "--cache-dir", str(folder / "cache")])
    err = capsys.readouterr().err
    # the plan's problem, or its file's (JSON that is not JSON: Infinity, NaN), in one line
    assert code == 2 and err.startswith(("edgediff evaluate: error: plan",
                                         f"edgediff evaluate: error: {plan}: ")) and err.count("\n") == 1
    assert not store.exists() and not (folder / "cache").exists()
