"""`edgediff dashboard` and `edgediff report` as a user runs them, and their one-line errors."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from dashboard_helpers import copy_store

from edgediff.cli import main

ROOT = Path(__file__).resolve().parents[2]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_dashboard_serves_as_the_readme_says(searched) -> None:
    process = subprocess.Popen([sys.executable, "-m", "edgediff", "dashboard", "--port", "0",
                                "--db", searched.url], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "edgediff dashboard on http://127.0.0.1:" in line, process.stderr.read()
        base = line.split(" on ")[1].split()[0]
        with urllib.request.urlopen(base + "api/studies", timeout=30) as response:
            names = [s["name"] for s in json.load(response)["studies"]]
        assert names == ["dash-dit", "dash-unet"]
        with urllib.request.urlopen(base + "studies/dash-dit", timeout=30) as response:
            assert b'id="front-plot"' in response.read()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


def test_dashboard_refuses_the_network_unless_asked(capsys, searched) -> None:
    code, _, err = cli(capsys, "dashboard", "--host", "0.0.0.0", "--db", searched.url)
    assert code == 2 and "refusing to serve on 0.0.0.0" in err and "--allow-remote" in err
    assert err.count("\n") == 1


def test_dashboard_bad_input(capsys, searched, tmp_path) -> None:
    missing = tmp_path / "none.db"
    code, _, err = cli(capsys, "dashboard", "--db", f"sqlite:///{missing}")
    assert code == 2 and "error" in err and err.count("\n") == 1
    assert not missing.exists()  # a read-only command creates no store
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        code, _, err = cli(capsys, "dashboard", "--port", port, "--db", searched.url)
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    try:
        main(["dashboard", "--port", "70000"])
    except SystemExit as stop:
        assert stop.code == 2
    assert "out of range" in capsys.readouterr().err


def test_report_command(capsys, searched, tmp_path) -> None:
    out = tmp_path / "dit.html"
    code, printed, _ = cli(capsys, "report", "dash-dit", "-o", str(out), "--db", searched.url)
    assert code == 0 and str(out) in printed
    html = out.read_text()
    assert html.startswith("<!doctype html>") and "dash-dit" in html
    assert "<script src=" not in html and 'rel="stylesheet"' not in html  # one self-contained file
    code, _, err = cli(capsys, "report", "nope", "-o", str(tmp_path / "nope.html"), "--db", searched.url)
    assert code == 2 and "no study 'nope'" in err and not (tmp_path / "nope.html").exists()
    code, _, err = cli(capsys, "report", "dash-dit", "-o", str(tmp_path / "no" / "r.html"),
                       "--db", searched.url)
    assert code == 2 and "does not exist" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dit.html"]  # no temporary file left


def test_report_to_a_folder_is_refused(capsys, searched, tmp_path) -> None:
    code, _, err = cli(capsys, "report", "dash-dit", "-o", str(tmp_path), "--db", searched.url)
    assert code == 2 and "is a folder" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def _add_failed_plan(url: str, study: str) -> str:
    """A greedy plan of `study` whose evaluation failed: on the hypervolume curve, on no front."""
    from dataclasses import replace

    from evaluators.plan import Plan
    from storage import EvaluationRecord, Store

    with Store.open(url) as store:
        info = store.get_study(study)
        plan = Plan.from_json(store.plan_json(study, store.full_model_point(study).plan_hash))
        plan = replace(plan, sampling=replace(plan.sampling, num_inference_steps=plan.num_steps - 2))
        record = EvaluationRecord(model=info.model, spec_hash=info.spec_hash, plan_hash=plan.content_hash(),
                                  status="failed", num_images=8, device="cpu", error="out of memory")
        store.record_candidate_evaluation(study, plan_json=plan.to_json(), plan_hash=plan.content_hash(),
                                          method="greedy", record=record)
    return plan.content_hash()


def test_report_of_a_study_above_max_plans_embeds_the_fronts_plans(capsys, searched, tmp_path) -> None:
    from dashboards.report import embedded_plans
    from dashboards.views import study_view
    from storage import Store

    url = copy_store(searched.url, tmp_path)
    failed = _add_failed_plan(url, "dash-dit")
    with Store.open(url, create=False) as store:
        view = study_view(store, "dash-dit")
    fronts = {p["plan_hash"] for p in view["front"]} | {view["full"]["plan_hash"]}
    fronts |= {p["plan_hash"] for data in view["methods"].values() for p in data["front"]}
    plotted, embedded = embedded_plans(view, max_plans=1)
    assert embedded == fronts and failed in plotted - fronts
    assert embedded_plans(view, max_plans=len(plotted)) == (plotted, plotted)

    out = tmp_path / "fronts.html"
    code, printed, _ = cli(capsys, "report", "dash-dit", "-o", str(out), "--max-plans", "1", "--db", url)
    assert code == 0
    assert f"embeds the views of the {len(fronts)} plans on a front, of {len(plotted)}" in printed
    html = out.read_text()
    assert all((f'<template id="plan-{h}">' in html) == (h in fronts) for h in plotted)
    assert f"--max-plans {len(plotted)}` embeds them all" in html  # said on the page too
    with pytest.raises(SystemExit) as stop:
        main(["report", "dash-dit", "-o", str(out), "--max-plans", "-1", "--db", url])
    assert stop.value.code == 2 and "out of range" in capsys.readouterr().err
