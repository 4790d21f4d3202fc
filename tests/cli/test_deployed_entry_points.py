"""Every deployed family through every entry point: `apply_plan`, `edgediff plan`, `evaluate` and
`search` accept it, or refuse it in one line with exit status 2 (no traceback from a diffusers
model class). Tiny random-weight folders: pipelines for FLUX, SD3 and SDXL (prompts stored as
embeddings), the bare transformer for Qwen-Image and Wan (no subject drives their pipelines)."""

from __future__ import annotations

import pytest

from edgediff.cli import main
from evaluators.families import facts_of
from evaluators.plan import Plan
from evaluators.runtime import apply_plan, model_ref
from evaluators.zoo.deployed import build_tiny
from evaluators.zoo.tiny_pipelines import save_tiny_pipeline, save_tiny_transformer

PROMPTS = ("a red square", "a blue circle")
FAMILIES = {  # family -> (class, tiny pipeline kind or None, evaluated and searched)
    "flux": ("FluxTransformer2DModel", "flux", True),
    "sd3": ("SD3Transformer2DModel", "sd3", True),
    "sdxl": ("UNet2DConditionModel", "sdxl", True),
    "qwen-image": ("QwenImageTransformer2DModel", None, False),
    "wan": ("WanTransformer3DModel", None, False),
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, tmp_path_factory):
    name = request.param
    cls, kind, driven = FAMILIES[name]
    folder = tmp_path_factory.mktemp(name) / "model"
    if kind is None:
        save_tiny_transformer(cls, folder)
    else:
        save_tiny_pipeline(kind, folder, PROMPTS)
    prompts = folder.parent / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    return name, cls, folder, prompts, driven


def one_line_error(capsys, command: str) -> str:
    text = capsys.readouterr().err
    assert "Traceback" not in text and "internal error" not in text, text
    err = text.strip().splitlines()[-1]  # after diffusers' own loading bar, if it drew one
    assert err.startswith(f"edgediff {command}: error: "), text
    assert sum("edgediff" in line for line in text.splitlines()) == 1, text
    return err


def test_apply_plan_takes_the_uncompressed_plan_and_removes_it_exactly(family):
    _, cls, *_ = family
    model = build_tiny(cls)
    before = {n: set(m.__dict__) for n, m in model.named_modules()}
    plan = facts_of(model).full_plan(model_ref(model, "tiny"), 2, 1.0)
    applied = apply_plan(model, plan)
    applied.remove()
    assert {n: set(m.__dict__) for n, m in model.named_modules()} == before


def test_plan_writes_the_uncompressed_plan_and_refuses_attention_in_one_line(family, tmp_path,
                                                                            capsys):
    name, cls, folder, *_ = family
    out = tmp_path / "plan.json"
    assert main(["plan", "--model", str(folder), "-o", str(out), "--plan-steps", "2",
                 "--guidance", "1.0"]) == 0
    plan = Plan.load(out)
    assert plan.model.model_class == cls and plan.num_steps == 2
    capsys.readouterr()
    assert main(["plan", "--model", str(folder), "-o", str(tmp_path / "a.json"),
                 "--plan-steps", "2", "--attention", "ast"]) == 2
    err = one_line_error(capsys, "plan")
    if name == "sdxl":
        assert "attention methods are for transformers" in err
    else:
        assert f"DiTFastAttn is not supported on {cls}" in err and "use the caches" in err
    assert not (tmp_path / "a.json").exists()


def test_evaluate_measures_the_plan_or_refuses_in_one_line(family, tmp_path, capsys):
    name, cls, folder, prompts, driven = family
    plan = tmp_path / "plan.json"
    assert main(["plan", "--model", str(folder), "-o", str(plan), "--plan-steps", "2",
                 "--guidance", "1.0"]) == 0
    capsys.readouterr()
    db = tmp_path / "store.db"
    code = main(["evaluate", "--model", str(folder), "--plan", str(plan), "--images", "2",
                 "--steps", "2", "--guidance", "1.0", "--prompts", str(prompts),
                 "--quality", "fidelity", "--db", f"sqlite:///{db}",
                 "--cache-dir", str(tmp_path / "cache")])
    if driven:
        assert code == 0, capsys.readouterr().err
        return
    assert code == 2
    err = one_line_error(capsys, "evaluate")
    assert f"is a {cls}" in err and "apply_plan" in err


def test_search_of_an_undriven_family_is_refused_before_ray_starts(family, tmp_path, capsys):
    name, cls, folder, prompts, driven = family
    if driven:
        pytest.skip("searched end to end in tests/search/test_deployed_search.py")
    import ray

    code = main(["search", "--model", str(folder), "--budget", "2", "--images", "2",
                 "--steps", "2", "--prompts", str(prompts), "--quality", "fidelity",
                 "--db", f"sqlite:///{tmp_path / 'store.db'}", "-o", str(tmp_path / "b.json")])
    assert code == 2 and not ray.is_initialized()
    assert f"is a {cls}" in one_line_error(capsys, "search")


def test_evaluate_refuses_a_plan_measured_at_another_size_before_writing(family, tmp_path,
                                                                         capsys):
    name, cls, folder, prompts, driven = family
    if name != "flux":
        pytest.skip("one family is enough: the check reads the plan's notes")
    out = tmp_path / "plan.json"
    assert main(["plan", "--model", str(folder), "-o", str(out), "--plan-steps", "2",
                 "--guidance", "1.0"]) == 0
    body = Plan.load(out).to_dict()
    body["notes"] = {"geometry": {"height": 32, "width": 32, "frames": 1, "tokens": 64}}
    Plan.from_dict(body).save(out)
    capsys.readouterr()
    db = tmp_path / "store.db"
    assert main(["evaluate", "--model", str(folder), "--plan", str(out), "--images", "2",
                 "--steps", "2", "--guidance", "1.0", "--prompts", str(prompts),
                 "--quality", "fidelity", "--db", f"sqlite:///{db}",
                 "--cache-dir", str(tmp_path / "cache")]) == 2
    err = one_line_error(capsys, "evaluate")
    assert "measured at 32x32 px (64 tokens per sample) but this model generates at 16x16 px" in err
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
