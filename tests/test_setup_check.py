"""The suite's own set-up: a machine without chromium or PostgreSQL gets one line saying what to
run (from `make test`'s check and from pytest itself), never a run of errors; the tests that need
them skip only when the user asks (EDGEDIFF_TEST_SKIP)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _without_chromium(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment whose PATH holds only this Python (no chromium), installing nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("python", "python3"):
        (bin_dir / name).unlink(missing_ok=True)
        (bin_dir / name).symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "EDGEDIFF_TEST_SKIP"}
    return {**env, "PATH": str(bin_dir), "PYTHONPATH": str(ROOT), "EDGEDIFF_TEST_NO_INSTALL": "1", **extra}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_check_names_the_missing_package_and_the_command_in_one_line(tmp_path) -> None:
    done = _run(["tests/setup_check.py"], _without_chromium(tmp_path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "chromium" in lines[0] and "apt-get install" in lines[0] and "EDGEDIFF_TEST_SKIP" in lines[0]
    assert "Traceback" not in done.stderr


def test_check_passes_when_the_user_skips_what_is_missing(tmp_path) -> None:
    env = _without_chromium(tmp_path, EDGEDIFF_TEST_SKIP="chromium,postgresql")
    done = _run(["tests/setup_check.py"], env)
    assert done.returncode == 0, done.stderr


def test_pytest_without_chromium_stops_with_that_line_and_no_errors(tmp_path) -> None:
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/dashboards/test_browser.py"]
    done = _run(args, _without_chromium(tmp_path))
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "apt-get install chromium" in out
    assert " error" not in out and "passed" not in out  # stopped before running anything

    skipped = _run(args, _without_chromium(tmp_path, EDGEDIFF_TEST_SKIP="chromium"))
    out = skipped.stdout + skipped.stderr
    assert skipped.returncode == 0, out
    assert "4 skipped" in out and "error" not in out
