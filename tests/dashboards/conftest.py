"""One store filled by a small real search (both methods on the shipped DiT and U-Net, local Ray),
and the dashboard served over it on a free loopback port, shared by the dashboard tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dashboard_helpers import Served, serve_in_thread

from evaluators.spec import EvalSpec
from search.driver import SearchConfig, SearchResult, run_search

SPEC = EvalSpec(num_images=8, num_inference_steps=6, batch_size=8)
STUDIES = {"dash-dit": "digits-dit", "dash-unet": "digits-unet"}


@dataclass(frozen=True)
class Searched:
    url: str  # the store
    results: dict[str, SearchResult]  # study -> what the search returned


@pytest.fixture(scope="session")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Searched:
    import ray

    folder = tmp_path_factory.mktemp("dashboard-store")
    url = f"sqlite:///{folder / 'store.db'}"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        results = {
            study: run_search(SearchConfig(
                study=study, model=model, spec=SPEC, methods=("baseline", "optuna"), budget=2,
                workers=2, threads=1, db_url=url, cache_dir=str(folder / "cache"),
                deltas=(0.05, 0.3), greedy={"n_calib": 2}))
            for study, model in STUDIES.items()
        }
    finally:
        ray.shutdown()
    return Searched(url, results)


@pytest.fixture(scope="session")
def served(searched: Searched) -> Iterator[Served]:
    yield from serve_in_thread(searched.url)


@pytest.fixture(scope="session")
def artefacts() -> Path:
    """Where tests leave files worth looking at (screenshots): test-artefacts/ in the project."""
    folder = Path(__file__).resolve().parents[2] / "test-artefacts"
    folder.mkdir(exist_ok=True)
    return folder

