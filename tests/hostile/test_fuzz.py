"""Hypothesis against the CLI's options and the store: whatever is typed, an option is either
refused in one line (exit 2, nothing created) or reaches the next check; whatever a study, method,
label or plan note holds, the store either refuses it in one line or gives it back exactly."""

from __future__ import annotations

import pytest
from hostile_helpers import cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluators.jsonread import JSONInputError, loads_strict
from evaluators.plan import ModelRef, Plan, PlanError, Sampling
from storage import Store, StoreError

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TEXT = st.text(st.characters(codec="utf-8"), max_size=80) | st.sampled_from(
    ["", ".", "..", "-1", "1e308", "nan", "inf", str(2**64), "9" * 400, "cuda:9", "meta", "sqlite:///",
     " x ", "a\nb", "a\tb", "../../etc", "\u202e", "%00", "s" * 201])
OPTIONS = ["--study", "--method", "--label", "--seed", "--steps", "--guidance", "--images",
           "--device", "--screen-images", "--classes", "--db", "--cache-dir", "--feature"]


@FAST
@given(choices=st.lists(st.tuples(st.sampled_from(OPTIONS), TEXT), min_size=1, max_size=4))
def test_evaluate_options_are_refused_in_one_line_and_create_nothing(capsys, tmp_path, choices):
    # The plan file does not exist, so the best any option can do is reach that check.
    args = ["evaluate", "--model", "digits-unet", "--plan", str(tmp_path / "missing.json"),
            "--db", f"sqlite:///{tmp_path / 'store.db'}"]
    for option, value in choices:
        if option in ("--db", "--cache-dir") and value and "://" not in value:
            value = str(tmp_path / "x" / value.replace("\x00", "")[:40])
        args += [option, value]
    code, out, err = cli(capsys, *args)
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and out == ""
    assert not (tmp_path / "store.db").exists() and not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'store.db'}"
    with Store.open(url) as store:
        yield store


NAMES = st.text(st.characters(codec="utf-8"), min_size=0, max_size=220)


@FAST
@given(name=NAMES, method=st.text(max_size=60), label=st.none() | st.text(max_size=220))
def test_the_store_refuses_or_gives_back_exactly(fuzz_store, name, method, label):
    try:
        fuzz_store.create_study(name, model="digits-unet", spec_json="{}", spec_hash="5" * 64)
    except StoreError as err:
        assert "\n" not in str(err)
        return
    assert fuzz_store.get_study(name).name == name
    plan = Plan(ModelRef("digits-unet", "UNet2DModel"), Sampling(4, 1.5))
    fuzz_store.add_candidate(name, plan_json=plan.to_json(), plan_hash=plan.content_hash(),
                             method=method[:50], label=None if label is None else label[:200])
    (candidate,) = fuzz_store.candidates(name)
    assert (candidate.method, candidate.label) == (method[:50], None if label is None else label[:200])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(codec="utf-8")),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                       max_size=4),
    max_leaves=20)


@FAST
@given(notes=st.dictionaries(st.text(max_size=10), JSON, max_size=4))
def test_plan_notes_either_refused_or_read_back_equal(notes):
    plan = Plan(ModelRef("digits-unet", "UNet2DModel"), Sampling(4, 1.5), notes=notes)
    try:
        text = plan.to_json()
    except PlanError as err:
        assert "\n" not in str(err)
        return
    again = Plan.from_json(text)
    assert again == plan and again.notes == loads_strict(text).get("notes", {})


@FAST
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_random_bytes_never_escape_the_plan_reader(data):
    try:
        Plan.from_json(data)
    except PlanError as err:
        assert "\n" not in str(err)
    try:
        loads_strict(data)
    except JSONInputError:
        pass
