"""The GPU-scale evaluation options of `evaluate` reach the study's spec and the measurement."""

from __future__ import annotations

import json

from edgediff.cli import main
from evaluators import references
from storage import Store


def test_evaluate_options_reach_the_spec_and_the_latency_repeats(capsys, tmp_path):
    references.clear()
    plan, url = tmp_path / "plan.json", f"sqlite:///{tmp_path / 'store.db'}"
    assert main(["plan", "--model", "digits-dit", "-o", str(plan), "--plan-steps", "2",
                 "--attention", "ast"]) == 0
    capsys.readouterr()
    code = main(["evaluate", "--model", "digits-dit", "--plan", str(plan), "--images", "4",
                 "--steps", "2", "--quality", "fidelity", "--batch-size", "2", "--dtype", "bf16",
                 "--scheduler", "DPMSolverMultistepScheduler", "--latency-repeats", "2",
                 "--db", url, "--cache-dir", str(tmp_path / "cache"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    with Store.open(url) as store:
        spec = json.loads(store.get_study("digits-dit").spec_json)
    assert {k: spec[k] for k in ("batch_size", "dtype", "scheduler", "latency_repeats")} == {
        "batch_size": 2, "dtype": "bf16", "scheduler": "DPMSolverMultistepScheduler",
        "latency_repeats": 2}
    (evaluation,) = out["evaluations"]
    latency = evaluation["extra"]["latency"]
    assert latency["repeats"] == 2 and latency["images_per_call"] == 2  # one batch of --batch-size
    assert evaluation["latency_per_image_s"] == latency["median_s"]
    assert evaluation["extra"]["batch_size"] == 2
    references.clear()
