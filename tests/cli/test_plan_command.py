"""`edgediff plan`: built from the model's config on `meta` (no weights read), one option
vocabulary with the other commands (old spellings kept as deprecated aliases)."""

from __future__ import annotations

import pytest

import evaluators.zoo
from edgediff.cli import build_parser, main
from edgediff.study_cli import plan_model
from evaluators.cost import count_macs
from evaluators.defaults import DEFAULT_STEPS
from evaluators.plan import Plan
from evaluators.templates import uniform_plan
from evaluators.zoo import load_model, load_model_on_meta


@pytest.mark.parametrize("model, options, kwargs", [
    ("digits-dit", ["--attention", "wars+asc"], {"attention": "wars+asc"}),
    ("digits-unet", ["--deepcache-branch", "2", "--interval", "3"],
     {"deepcache_branch": 2, "interval": 3}),
])
def test_plan_reads_no_weights_and_writes_the_same_plan(model, options, kwargs, tmp_path,
                                                        monkeypatch, capsys):
    loaded = uniform_plan(model, load_model(model), steps=6, guidance_scale=1.5, **kwargs)

    def no_weights(*args, **kw):
        raise AssertionError("edgediff plan must not load the weights")

    monkeypatch.setattr(evaluators.zoo, "load_model", no_weights)
    out = tmp_path / "plan.json"
    assert main(["plan", "--model", model, "--out", str(out), "--plan-steps", "6",
                 "--guidance", "1.5", *options]) == 0
    assert Plan.load(out).content_hash() == loaded.content_hash()  # plan hashes unchanged
    assert all(p.device.type == "meta" for p in load_model_on_meta(model).parameters())


def test_old_spellings_are_deprecated_aliases(capsys):
    parser = build_parser()
    new = parser.parse_args(["plan", "--model", "digits-dit", "-o", "p.json", "--plan-steps", "6"])
    assert capsys.readouterr().err == ""
    old = parser.parse_args(["plan", "digits-dit", "-o", "p.json", "--steps", "6"])
    err = capsys.readouterr().err
    assert "--steps is deprecated; use --plan-steps" in err
    assert "MODEL is deprecated; use --model" in err
    assert plan_model(old) == plan_model(new) == "digits-dit"
    assert old.plan_steps == new.plan_steps == 6
    assert parser.parse_args(["plan", "--model", "m", "-o", "p"]).plan_steps == DEFAULT_STEPS
    searched = [parser.parse_args(["search", "--model", "digits-dit", flag, "best.json"]).out
                for flag in ("--out", "-o", "--export")]
    assert searched == ["best.json"] * 3
    assert "--export is deprecated; use --out" in capsys.readouterr().err
    for command in ("plan", "search"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        assert "deprecated" in capsys.readouterr().out


def test_plan_needs_one_model(tmp_path, capsys):
    out = str(tmp_path / "p.json")
    assert main(["plan", "-o", out]) == 2
    assert "pass --model NAME" in capsys.readouterr().err
    assert main(["plan", "digits-unet", "--model", "digits-dit", "-o", out]) == 2
    assert "pass only --model" in capsys.readouterr().err


@pytest.mark.parametrize("model, options", [
    ("digits-unet", ["--drop-levels", "1"]),
    ("digits-dit", ["--attention", "ast"]),
])
def test_plan_prints_the_parameters_it_never_runs(model, options, tmp_path, capsys):
    """The footprint `edgediff evaluate` reports (parameters no step reads, the bytes they need
    not occupy), printed when the plan is written; depth-skip drops some, DiTFastAttn none."""
    out = tmp_path / "plan.json"
    assert main(["plan", "--model", model, "-o", str(out), "--plan-steps", "4", *options]) == 0
    printed = capsys.readouterr().out
    real = load_model(model)
    counted = count_macs(real, Plan.load(out), num_images=1).footprint
    assert counted.params == sum(p.numel() for p in real.parameters())
    line = next(x for x in printed.splitlines() if x.startswith("params never run: "))
    assert f"{counted.skipped / 1e6:.1f}M/{counted.params / 1e6:.1f}M" in line
    assert f"({counted.skipped_share:.1%})" in line
    if model == "digits-unet":
        assert counted.skipped > 0 and f"{4 * counted.skipped / 1e6:.1f} MB float32" in line
    else:
        assert counted.skipped == 0 and "0 B that need not be loaded" in line
