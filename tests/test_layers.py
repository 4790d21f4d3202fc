"""The packages import one way: the CLI (edgediff) above dashboards and search, which sit above
storage and evaluators; evaluators know nothing of Optuna, Ray or SQL, storage nothing of torch."""

from __future__ import annotations

import ast
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


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_one_above_it(package):
    bad = {f"{path.relative_to(ROOT)}: {name}"
           for path in (ROOT / package).rglob("*.py")
           for name in imported_roots(path) & FORBIDDEN[package]}
    assert not bad, sorted(bad)
