"""`edgediff dashboard` and `edgediff report` as a user runs them, and their one-line errors."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

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
