"""What a search is asked to do (`SearchConfig`), checked before anything starts, and the
methods it runs, resolved for the model's family."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evaluators.defaults import DEFAULT_CACHE_DIR
from evaluators.spec import EvalSpec
from search.errors import SearchError
from search.methods import BASELINE, baseline_for, search_method, search_methods
from search.rungs import DEFAULT_KEEP, check_rungs
from search.strategies.optuna_search import OPTUNA, SAMPLERS
from storage import COSTS, LEASE_TTL_S, StoreError, check_study_name


@dataclass(frozen=True)
class SearchConfig:
    """One search.

    Attributes:
        study: the study name (a search with the same name resumes it).
        model: registry name, local folder or hub id.
        spec: the evaluation spec (images, steps, guidance, reference set, ...).
        methods: registered search methods (`search.methods`); "baseline" stands for the model
            family's paper baseline ("greedy" for transformers, "deepcache-grid" for U-Nets).
        budget: evaluations per method (a baseline stops earlier when its sweep is smaller).
        workers: evaluations in flight at once (Ray tasks).
        time_limit_s: stop dispatching and end after this many seconds (None: no limit).
        address: a Ray cluster to join ("auto" or host:port); None starts a local Ray.
        db_url: the store (None: $EDGEDIFF_DB or the default SQLite file).
        sampler: Optuna sampler: "nsga2", "tpe" or "gp".
        seed: the sampler's seed.
        device: torch device on the workers; "cuda" asks Ray for `gpus_per_worker` GPUs per task.
        threads: torch CPU threads per task (None: the CPUs divided among the workers).
        gpus_per_worker: GPUs per task (default 1 when device is cuda, else 0).
        cache_dir: where workers cache the uncompressed model's run.
        deltas: the greedy's thresholds (None: the published sweep).
        greedy: other `greedy_plan` options (n_calib, seed, window).
        max_seeds: baseline plans enqueued into Optuna (None: a third of the budget).
        max_retries: Ray retries of a task whose worker died.
        lease_ttl_s: the study's lease goes stale (another search may take it over) after this
            many seconds without a heartbeat (`storage.lease`).
        objective: the cost minimised with the quality, "macs" (MACs per image) or "latency"
            (measured seconds per image, relative to the full model's); stored with the study.
        rungs: image counts of a multi-fidelity search's rungs, rising, the last the spec's
            `num_images` (`search.rungs`); () measures every plan in full.
        keep: the share of a rung's plans that go on to the next (successive halving).
    """

    study: str
    model: str
    spec: EvalSpec
    methods: tuple[str, ...] = (BASELINE, OPTUNA)
    budget: int = 10
    workers: int = 1
    time_limit_s: float | None = None
    address: str | None = None
    db_url: str | None = None
    sampler: str = "nsga2"
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    gpus_per_worker: float | None = None
    cache_dir: str | None = DEFAULT_CACHE_DIR
    deltas: tuple[float, ...] | None = None
    greedy: dict[str, Any] = field(default_factory=dict)
    max_seeds: int | None = None
    max_retries: int = 2
    lease_ttl_s: float = LEASE_TTL_S
    objective: str = "macs"
    rungs: tuple[int, ...] = ()
    keep: float = DEFAULT_KEEP


def check_config(config: SearchConfig) -> None:
    """SearchError naming the first bad option and its fix."""
    names = [m.name for m in search_methods()] + [BASELINE]
    unknown = [m for m in config.methods if m not in names]
    if not config.methods or unknown:
        raise SearchError(f"unknown search method {unknown[0] if unknown else '(none)'}: choose "
                          f"{', '.join(names)}")
    if config.objective not in COSTS:
        raise SearchError(f"unknown objective '{config.objective}': choose {', '.join(COSTS)}")
    if config.gpus_per_worker and not config.device.startswith("cuda"):
        raise SearchError(f"--gpus-per-worker {config.gpus_per_worker:g} needs --device cuda; "
                          "on the CPU leave it out (0)")
    if config.sampler not in SAMPLERS:
        raise SearchError(f"unknown sampler '{config.sampler}': choose {', '.join(SAMPLERS)}")
    if config.budget < 1 or config.workers < 1:
        raise SearchError("--budget and --workers must be at least 1")
    if config.time_limit_s is not None and config.time_limit_s <= 0:
        raise SearchError("--time-limit must be a positive number of seconds")
    if any(d < 0 for d in config.deltas or ()):
        raise SearchError("greedy thresholds (--deltas) must be >= 0")
    check_rungs(config.rungs, config.keep, config.spec)
    try:
        check_study_name(config.study)
    except StoreError as err:
        raise SearchError(str(err)) from None


def resolve_methods(config: SearchConfig, family: str) -> tuple[str, ...]:
    """The configured methods for a model of `family`, in the registry's order: "baseline" as the
    family's, each once; SearchError for a method that does not apply to the model."""
    out: list[str] = []
    for name in config.methods:
        method = baseline_for(family) if name == BASELINE else search_method(name)
        if not method.applies_to(family):
            fix = baseline_for(family).name if method.baseline else BASELINE
            raise SearchError(f"search method {method.name} applies to {method.family} models, "
                              f"but {config.model} is a {family}: use --method {fix}")
        if method.name not in out:
            out.append(method.name)
    order = [m.name for m in search_methods()]  # the baseline first, as the driver always ran them
    return tuple(sorted(out, key=order.index))
