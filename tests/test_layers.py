"""The packages import one way: the CLI (edgediff) above dashboards and search, which sit above
storage and evaluators; evaluators know nothing of Optuna, Ray or SQL, storage nothing of torch.
The dashboard reads the search methods' registry (`search.methods`, torch-, Optuna- and Ray-free)
and nothing else of search."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> what it may not import (ours above it, and the libraries of other layers)
FORBIDDEN = {
    "evaluators": {"edgediff", "dashboards", "search", "storage", "optuna", "ray", "sqlalchemy"},
    "storage": {"edgediff", "dashboards", "search", "evaluators", "torch", "ray", "optuna"},
    "search": {"edgediff", "dashboards"},
    "dashboards": {"edgediff", "search", "ray", "optuna"},
}
ALLOWED = {"dashboards": {"search.methods"}}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_one_above_it(package):
    bad = {f"{path.relative_to(ROOT)}: {name}"
           for path in (ROOT / package).rglob("*.py")
           for name in imported(path) - ALLOWED.get(package, set())
           if name.split(".")[0] in FORBIDDEN[package]}
    assert not bad, sorted(bad)


def test_the_registry_the_dashboard_reads_imports_no_search_machinery():
    code = ("import sys, search.methods\n"
            "heavy = [m for m in ('torch', 'optuna', 'ray', 'sqlalchemy') if m in sys.modules]\n"
            "sys.exit(' '.join(heavy) or None)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
