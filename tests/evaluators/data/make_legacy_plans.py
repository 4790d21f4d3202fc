"""Write `legacy_plans.json`: plans made the way the test suite and `make demo` make them.

Run once on the code before a change to the plan format's implementation:

    PYTHONPATH=$PWD python tests/evaluators/data/make_legacy_plans.py

Every entry holds the plan file text (`Plan.to_json()`), its content hash and, for search-space
points, the point itself, so `test_legacy_plans.py` checks that the plans load unchanged, keep
their hashes, and that the spaces and templates still build them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import torch

from evaluators.plan import Plan, full_plan
from evaluators.runtime import model_ref
from evaluators.subjects import load_subject
from evaluators.templates import uniform_plan
from evaluators.zoo import load_model
from search.baselines import deepcache_grid
from search.greedy import greedy_plan
from search.space import make_space, model_facts

OUT = Path(__file__).with_name("legacy_plans.json")
POINTS = 12


def entry(kind: str, plan: Plan, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "json": plan.to_json(), "hash": plan.content_hash(), **extra}


def space_points(label: str, facts: dict[str, Any], base: Plan, seed: int) -> list[dict[str, Any]]:
    space = make_space(facts, base)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(POINTS):
        plan = space.suggest(study.ask())
        out.append(entry(f"space:{label}", plan, params=plan.notes["params"], base=base.to_json()))
    return out


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.manual_seed(0)
    dit, unet = load_model("digits-dit"), load_model("digits-unet")
    dit_ref, unet_ref = model_ref(dit, "digits-dit"), model_ref(unet, "digits-unet")
    entries: list[dict[str, Any]] = []
    dit_facts, unet_facts = model_facts(dit), model_facts(unet)
    for steps, guidance in ((50, 1.5), (25, 1.5), (10, 1.0)):
        dit_full = full_plan(dit_ref, steps, guidance, dit_facts["num_layers"])
        unet_full = full_plan(unet_ref, steps, guidance)
        entries += [entry("full", dit_full), entry("full", unet_full)]
        entries += space_points(f"dit-{steps}-{guidance}", dit_facts, dit_full, seed=steps)
        entries += space_points(f"unet-{steps}-{guidance}", unet_facts, unet_full, seed=steps)
        for label, plan in deepcache_grid(unet_facts, unet_full):
            entries.append(entry("deepcache-grid", plan, label=label))
    for method in ("wars", "ast", "asc", "full+asc", "wars+asc"):
        entries.append(entry("template", uniform_plan("digits-dit", dit, steps=20, guidance_scale=1.5,
                                                      attention=method, from_step=3, window=8)))
    entries.append(entry("template", uniform_plan("digits-unet", unet, steps=20, guidance_scale=1.5,
                                                  deepcache_branch=2, interval=3)))
    entries.append(entry("template", uniform_plan("digits-unet", unet, steps=20, guidance_scale=1.5,
                                                  drop_levels=1, gamma=1.5)))
    entries.append(entry("template", uniform_plan("digits-unet", unet, steps=20, guidance_scale=1.5,
                                                  deepcache_branch=1, interval=2, drop_levels=1)))
    sampling = {"num_inference_steps": 30, "guidance_scale": 2.0}
    hand = [
        {"deepcache": {"branch": 3, "interval": 5, "schedule": "nonuniform", "center": 10,
                       "power": 1.4}},
        {"deepcache": {"branch": 1, "schedule": "explicit", "full_steps": [0, 3, 9, 20]}},
        {"deepcache": {"branch": 0, "interval": 4}, "depth_skip": {"drop_levels": 2}},
        {"depth_skip": {"drop_levels": 1}, "sampling": {**sampling, "spacing": "gamma",
                                                        "gamma": 2.0}},
        {"deepcache": {"branch": 2, "interval": 2}, "notes": {"by": "hand", "fid": 3.25}},
    ]
    for extra in hand:
        data = {"format": "edgediff-plan", "version": 1, "model": vars(unet_ref),
                "sampling": sampling, **extra}
        entries.append(entry("hand", Plan.from_dict(data)))
    subject = load_subject("digits-dit")
    base = full_plan(model_ref(subject.denoiser, "digits-dit"), 10, 1.5, dit_facts["num_layers"])
    for delta in (0.05, 0.15):
        entries.append(entry("greedy", greedy_plan(subject, base, delta, n_calib=2)))
    OUT.write_text(json.dumps(entries, indent=1) + "\n")
    print(f"{len(entries)} plans -> {OUT}")


if __name__ == "__main__":
    main()
