"""What the test suite needs besides Python packages, checked (and installed) before it runs.

Two Debian packages: `postgresql` (the store tests start a throwaway server from its binaries) and
`chromium` (the dashboard's browser test drives it headless). `make test` runs this script first:
whatever is missing is installed with apt-get when it can be (as root, with apt-get on the machine),
otherwise the script prints one line saying what to run and exits with status 2. The conftest
uses the same lookups, so a plain `pytest` on a machine without them stops with that line too.

EDGEDIFF_TEST_SKIP=chromium,postgresql (either or both) skips the tests that need them instead;
nothing is installed for a skipped package. EDGEDIFF_TEST_NO_INSTALL=1 reports without installing.

    python tests/setup_check.py     # exit 0: ready; exit 2: one line on stderr says what to do
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGES = ("postgresql", "chromium")
SKIP_VARIABLE = "EDGEDIFF_TEST_SKIP"


def chromium_path() -> str | None:
    """Debian's chromium on PATH, or None."""
    return shutil.which("chromium")


def postgres_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: from PATH, else the newest /usr/lib/postgresql/*/bin."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for folder in reversed(folders):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def skipped() -> set[str]:
    """The packages whose tests the user asked to skip ($EDGEDIFF_TEST_SKIP)."""
    return {part.strip() for part in os.environ.get(SKIP_VARIABLE, "").split(",") if part.strip()}


def missing() -> list[str]:
    """The needed packages that are neither installed nor skipped."""
    found = {"postgresql": postgres_bin_dir() is not None, "chromium": chromium_path() is not None}
    return [name for name in PACKAGES if not found[name] and name not in skipped()]


def advice(packages: list[str]) -> str:
    """One line: what is missing, the command that installs it, and how to skip instead."""
    names = " ".join(packages)
    return (f"the tests need Debian's {names} package(s), not found: run `sudo apt-get install {names}` "
            f"(or set {SKIP_VARIABLE}={','.join(packages)} to skip the tests that need them)")


def _can_install() -> bool:
    return (os.geteuid() == 0 and shutil.which("apt-get") is not None
            and not os.environ.get("EDGEDIFF_TEST_NO_INSTALL"))


def _install(packages: list[str]) -> str | None:
    """apt-get update and install; None on success, else the last line apt-get printed."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return lines[-1] if lines else f"{' '.join(command)} exited with {done.returncode}"
    return None


def main() -> int:
    needed = missing()
    if not needed:
        return 0
    if not _can_install():
        print(f"error: {advice(needed)}", file=sys.stderr)
        return 2
    print(f"installing {' '.join(needed)} with apt-get (the tests need them)", file=sys.stderr)
    failure = _install(needed)
    still = missing()
    if still:
        reason = f" ({failure})" if failure else ""
        print(f"error: apt-get could not install them{reason}; {advice(still)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
