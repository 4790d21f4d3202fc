"""Default study names: a hub id makes a valid name, and a bad name fails before any work."""

from __future__ import annotations

import pytest

from edgediff.cli import main
from edgediff.study_cli import default_study_name
from evaluators.plan import ModelRef, full_plan
from storage import check_study_name


@pytest.mark.parametrize("model, name", [
    ("facebook/DiT-XL-2-256", "facebook-DiT-XL-2-256"),
    ("digits-dit", "digits-dit"),
    ("./checkpoints/my-dit/", "checkpoints-my-dit"),
    ("/data/models/sd15", "data-models-sd15"),
])
def test_default_names_are_valid_study_names(model, name):
    assert default_study_name(model) == name
    check_study_name(name)


class Refused(Exception):
    pass


def test_a_bad_study_name_fails_before_the_model_is_loaded(tmp_path, monkeypatch, capsys):
    import evaluators.evaluate

    def no_evaluator(*args, **kwargs):
        raise Refused("the name must be checked before an evaluator is built")

    monkeypatch.setattr(evaluators.evaluate, "Evaluator", no_evaluator)
    plan = tmp_path / "plan.json"
    full_plan(ModelRef("digits-dit", "DiTTransformer2DModel"), 4, 1.5, 8).save(plan)
    db = f"sqlite:///{tmp_path / 'store.db'}"
    code = main(["evaluate", "--model", "digits-dit", "--plan", str(plan), "--study", "a/b",
                 "--db", db])
    err = capsys.readouterr().err
    assert code == 2 and "contains '/'" in err and "a-b" in err
    assert not (tmp_path / "store.db").exists()
