"""Every bad input to `plan`, `evaluate` and `search` is refused in one line, exit 2, before
anything is written: the store's rows are counted before and after each refusal."""

from __future__ import annotations

import json

import pytest
from hostile_helpers import cli, one_line_error, row_counts

STRIP = "m" * 51


def _evaluate(url, plan, *extra):
    return ["evaluate", "--model", "digits-unet", "--plan", plan, "--db", url, *extra]


@pytest.mark.parametrize("extra, needle", [
    (["--db", "sqlite:///"], "in-memory SQLite"),
    (["--db", "sqlite:///:memory:"], "in-memory SQLite"),
    (["--device", "cuda"], "no usable CUDA GPU"),
    (["--device", "foo"], "is not a torch device"),
    (["--device", "meta"], "not meta"),
    (["--method", STRIP], "--method is 51 characters long"),
    (["--label", "l" * 201], "--label is 201 characters long"),
    (["--label", "a\nb"], "control character"),
    (["--study", ""], "cannot be empty"),
    (["--study", "."], "only dots"),
    (["--study", ".."], "only dots"),
    (["--study", "a\tb"], "control character"),
    (["--study", " s"], "starts or ends with a space"),
    (["--guidance", "101"], "guidance is >= 1"),
    (["--guidance", "1e308"], "guidance is >= 1"),
    (["--steps", "1001"], "out of range"),
    (["--seed", "-1"], "out of range"),
    (["--seed", str(2**64)], "out of range"),
    (["--seed", "9" * 5000], "not an integer of a sensible size"),
    (["--classes", "99"], "class 99 is out of range"),
    (["--prompts", "PROMPTS"], "it takes no prompts"),
    (["--cache-dir", "FILE/cache"], "which is a file"),
    (["--model", "./nonexistent"], "model folder './nonexistent' does not exist"),
    (["--model", "BADMODEL"], "is not valid JSON"),
    (["--dtype", "fp8"], "invalid choice: 'fp8'"),
    (["--height", "64"], "height and width go together"),
    (["--height", "60", "--width", "64"], "give a multiple of 8"),
    (["--height", "32", "--width", "32"], "generates at its own fixed size"),
    (["--scheduler", "dpm++"], "is not a scheduler class name"),
    (["--scheduler", "FlowMatchEulerDiscreteScheduler"], "use one of DDIMScheduler, "),
    (["--negative-prompt", "blurry"], "is set but there are no prompts"),
    (["--vae-decode", "slicing"], "has no VAE"),
    (["--latency-repeats", "101"], "out of range"),
    (["--batch-size", "0"], "out of range"),
])
def test_evaluate_refuses_before_writing(capsys, tmp_path, seeded_url, unet_plan, extra, needle):
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "PROMPTS").write_text("a cat\n")
    bad_model = tmp_path / "BADMODEL"
    bad_model.mkdir()
    (bad_model / "config.json").write_text('{"_class_name": "UNet2DModel",')
    extra = [str(tmp_path / e) if e in ("FILE/cache", "PROMPTS", "BADMODEL") else e for e in extra]
    before = row_counts(seeded_url)
    code, out, err = cli(capsys, *_evaluate(seeded_url, unet_plan, "--study", "fresh",
                                            "--cache-dir", tmp_path / "cache", *extra))
    one_line_error(code, err, needle)
    assert row_counts(seeded_url) == before
    assert not (tmp_path / "cache").exists()


def _write(tmp_path, name: str, doc) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return str(path)


def test_a_plan_that_does_not_fit_is_refused_before_the_study_is_written(capsys, tmp_path, seeded_url):
    doc = {"format": "edgediff-plan", "version": 1,
           "model": {"name": "digits-unet", "model_class": "UNet2DModel"},
           "sampling": {"num_inference_steps": 4, "guidance_scale": 1.5}}
    cases = {
        "branch 99": ({**doc, "deepcache": {"branch": 99, "interval": 2}}, "branch: 99 is out of range"),
        "levels 99": ({**doc, "depth_skip": {"drop_levels": 99}}, "drop_levels: 99"),
        "scheduler": ({**doc, "sampling": {**doc["sampling"], "scheduler": "Euler"}},
                      "edgediff measures plans with DDIMScheduler"),
    }
    for name, (plan, needle) in cases.items():
        for study in ("s", "new"):  # an existing study and a new one: neither is touched
            before = row_counts(seeded_url)
            code, _, err = cli(capsys, *_evaluate(seeded_url, _write(tmp_path, "p.json", plan),
                                                  "--study", study, "--cache-dir", tmp_path / "c"))
            one_line_error(code, err, needle)
            assert row_counts(seeded_url) == before, name


def test_a_dit_plan_with_too_few_layers_is_refused_before_writing(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tmp_path / "dit.json"
    assert cli(capsys, "plan", "--model", "digits-dit", "-o", path, "--plan-steps", "4",
               "--attention", "wars")[0] == 0
    doc = json.loads(path.read_text())
    doc["attention"]["methods"] = doc["attention"]["methods"][:3]
    doc["model"].pop("fingerprint")
    code, _, err = cli(capsys, "evaluate", "--model", "digits-dit", "--plan",
                       _write(tmp_path, "short.json", doc), "--db", url, "--images", "4",
                       "--cache-dir", tmp_path / "c")
    one_line_error(code, err, "3 layers but the model")
    assert row_counts(url) == {}  # not even the store's tables


@pytest.mark.parametrize("extra, needle", [
    (["--deepcache-branch", "99"], "branch: 99 is out of range"),
    (["--drop-levels", "99"], "drop_levels: 99"),
    (["--deepcache-branch", "-1"], "out of range"),
    (["--plan-steps", "1001"], "out of range"),
    (["-o", "FOLDER"], "is a folder"),
    (["-o", "FOLDER/missing/p.json"], "does not exist"),
])
def test_plan_refuses_what_it_cannot_write(capsys, tmp_path, extra, needle):
    extra = [str(tmp_path) if e == "FOLDER" else e.replace("FOLDER", str(tmp_path)) for e in extra]
    target = tmp_path / "p.json"
    code, out, err = cli(capsys, "plan", "--model", "digits-unet", "-o", target, *extra)
    one_line_error(code, err, needle)
    assert out == "" and not target.exists()


@pytest.mark.parametrize("extra, needle", [
    (["--sampler-seed", "-1"], "out of range"),
    (["--sampler-seed", str(2**32)], "out of range"),
    (["--out", "FOLDER"], "is a folder"),
    (["--out", "FOLDER/missing/best.json"], "does not exist"),
    (["--cache-dir", "FILE/cache"], "which is a file"),
    (["--db", "sqlite:///"], "in-memory SQLite"),
    (["--study", ""], "cannot be empty"),
    (["--study", ".."], "only dots"),
    (["--device", "foo"], "is not a torch device"),
    (["--device", "cuda"], "no usable CUDA GPU"),
    (["--guidance", "101"], "guidance is >= 1"),
    (["--steps", "1001"], "out of range"),
    (["--model", "./nonexistent"], "does not exist"),
    (["--objective", "latency"], "study 's' minimises macs, not latency: leave --objective out"),
    (["--objective", "fast"], "invalid choice: 'fast'"),
    (["--study", "new", "--gpus-per-worker", "1"], "--gpus-per-worker 1 needs --device cuda"),
    (["--gpus-per-worker", "-1"], "out of range"),
    (["--dtype", "fp8"], "invalid choice: 'fp8'"),
])
def test_search_refuses_before_ray_starts_or_anything_is_written(capsys, tmp_path, seeded_url,
                                                                 extra, needle):
    (tmp_path / "FILE").write_text("x")
    extra = [e.replace("FOLDER", str(tmp_path)).replace("FILE", str(tmp_path / "FILE")) for e in extra]
    before = row_counts(seeded_url)
    code, _, err = cli(capsys, "search", "--model", "digits-unet", "--db", seeded_url, "--budget", "1",
                       "--study", "s", *extra)
    one_line_error(code, err, needle)
    assert row_counts(seeded_url) == before
    import ray

    assert not ray.is_initialized()


def test_the_sampler_seed_at_its_limit_resumes(tmp_path):
    from evaluators.plan import full_plan
    from evaluators.runtime import model_ref
    from evaluators.zoo import load_model
    from search.space import make_space, model_facts
    from search.strategies import ProposalOutcome as Outcome
    from search.strategies.optuna_search import OptunaStrategy

    model = load_model("digits-unet")
    base = full_plan(model_ref(model, "digits-unet"), 4, 1.5)
    space = make_space(model_facts(model), base)
    url = f"sqlite:///{tmp_path / 'o.db'}"
    first = OptunaStrategy(url, "s", space, 3, seed=2**32 - 1, full_hash=base.content_hash())
    proposal = first.ask()
    first.tell(proposal, Outcome(macs=10, fid=1.0))
    again = OptunaStrategy(url, "s", space, 3, seed=2**32 - 1, full_hash=base.content_hash())
    assert again.ask() is not None  # the seed moved on past 2**32 - 1 without overflowing
