"""The CLI's one error boundary: damaged stores, database errors after opening, a closed stdout and
bugs each end in one line (a bug's line names the log file holding its traceback)."""

from __future__ import annotations

import io
import os

import pytest
from hostile_helpers import cli, one_line_error, row_counts
from sqlalchemy import create_engine, text

from evaluators.plan import ModelRef, Plan, Sampling
from storage import EvaluationRecord, Store

SPEC = "5" * 64
PLAN = Plan(ModelRef("digits-unet", "UNet2DModel"), Sampling(4, 1.5))


def _store_with_a_point(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with Store.open(url) as store:
        store.create_study("s", model="digits-unet", spec_json="{}", spec_hash=SPEC)
        store.record_candidate_evaluation(
            "s", plan_json=PLAN.to_json(), plan_hash=PLAN.content_hash(), method="manual",
            record=EvaluationRecord(model="digits-unet", spec_hash=SPEC, plan_hash=PLAN.content_hash(),
                                    status="ok", num_images=4, device="cpu", fid=3.0,
                                    macs_per_image=100))
    return url


def _sql(url: str, statement: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(statement))
    engine.dispose()


@pytest.mark.parametrize("damage, needle", [
    ("UPDATE edgediff_evaluations SET extra = 'not json{'", "JSON"),
    ("UPDATE edgediff_evaluations SET started_at = 'yesterday-ish'", "holds a row this edgediff cannot read"),
    ("INSERT INTO edgediff_alembic_version VALUES ('0001')", "records 2 schema revisions"),
])
@pytest.mark.parametrize("command", [["studies"], ["front", "s", "--all"], ["report", "s", "-o", "R"],
                                     ["export", "s", "--max-fid", "9", "-o", "E"]])
def test_damaged_rows_are_one_line(capsys, tmp_path, damage, needle, command):
    url = _store_with_a_point(tmp_path)
    _sql(url, damage)
    before = row_counts(url)
    command = [str(tmp_path / c) if c in ("R", "E") else c for c in command]
    code, out, err = cli(capsys, *command, "--db", url)
    if code == 0:  # a command that never reads the damaged column is fine too
        assert "extra" in damage or "started_at" in damage
        return
    one_line_error(code, err, needle)
    assert row_counts(url) == before


def test_a_read_only_store_refuses_the_write_in_one_line(capsys, tmp_path):
    url = _store_with_a_point(tmp_path)
    path = tmp_path / "store.db"
    before = row_counts(url)
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    code, _, err = cli(capsys, "export", "s", "--max-fid", "9", "-o", tmp_path / "e.json", "--db", read_only)
    one_line_error(code, err, "the store is read-only")
    assert row_counts(url) == before and not (tmp_path / "e.json").exists()


def test_corrupt_pages_are_one_line(capsys, tmp_path):
    url = _store_with_a_point(tmp_path)
    path = tmp_path / "store.db"
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(page, len(data), page):  # keep the header page, scramble every other one
        data[start + 8:start + 200] = os.urandom(192)
    path.write_bytes(bytes(data))
    for command in (["studies"], ["front", "s"], ["report", "s", "-o", str(tmp_path / "r.html")]):
        code, _, err = cli(capsys, *command, "--db", url)
        assert code == 2, err
        assert err.count("\n") == 1 and "Traceback" not in err, err


def test_a_bug_is_one_line_naming_the_log_with_its_traceback(capsys, tmp_path, monkeypatch):
    from edgediff import study_cli

    def broken(args):
        raise ZeroDivisionError("division by zero in a deliberately broken command")

    monkeypatch.setenv("EDGEDIFF_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr(study_cli, "cmd_studies", broken)
    from edgediff import cli as cli_module

    parser = cli_module.build_parser()
    args = parser.parse_args(["studies"])
    args.func = broken
    from edgediff.boundary import run_command

    code = run_command("studies", broken, args)
    err = capsys.readouterr().err
    one_line_error(code, err, "internal error (a bug in edgediff", status=70)
    (log,) = (tmp_path / "logs").iterdir()
    assert str(log) in err
    assert "Traceback" in log.read_text() and "ZeroDivisionError" in log.read_text()


class _ClosedPipe(io.TextIOBase):
    """A stdout whose reader went away (`edgediff export --json | head`)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return self._fd


def test_a_closed_stdout_ends_quietly(capsys, tmp_path, monkeypatch):
    url = _store_with_a_point(tmp_path)
    capsys.readouterr()
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        with capsys.disabled():
            import sys

            monkeypatch.setattr(sys, "stdout", _ClosedPipe(fd))
            from edgediff.cli import main

            code = main(["front", "s", "--json", "--db", url])
            monkeypatch.undo()
    finally:
        os.close(fd)
    assert code == 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_closed_pipe_in_a_real_process_prints_no_traceback(tmp_path):
    import subprocess
    import sys

    url = _store_with_a_point(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(f"{sys.executable} -m edgediff front s --all --json --db {url} | head -c 1",
                          shell=True, capture_output=True, text=True, env=env, timeout=300)
    assert done.stdout == "{" and "Traceback" not in done.stderr and "Error" not in done.stderr


def test_an_old_name_with_a_newline_keeps_the_table_one_row(capsys, tmp_path):
    url = _store_with_a_point(tmp_path)
    _sql(url, "UPDATE edgediff_studies SET name = 'two' || char(10) || 'lines' || char(9) || 'tab'")
    code, out, _ = cli(capsys, "studies", "--db", url)
    assert code == 0
    assert len(out.strip().splitlines()) == 3 and "two\\nlines\\ttab" in out
