"""What a search returns: each method's front and hypervolume (`hypervolumes`, read from the
store) and the run's counts (`SearchResult`); re-exported by `search.driver`."""

from __future__ import annotations

from dataclasses import dataclass

from storage import Point, Store, StudyInfo, normalized_hypervolume, reference_point


@dataclass(frozen=True)
class MethodSummary:
    """One method's result: its candidates' front and the front's hypervolume."""

    method: str
    done: int
    front: list[Point]
    hypervolume: float


@dataclass(frozen=True)
class SearchResult:
    """What a search (or this run of a resumed one) did."""

    study: str
    full: Point | None
    methods: dict[str, MethodSummary]
    reference_point: tuple[float, float] | None
    measured: int
    reused: int
    failed: int
    seconds: float
    loop_seconds: float  # after the uncompressed model's run: the candidates' share of `seconds`
    stopped: str  # "finished" or "time limit"
    objective: str = "macs"  # the study's cost: "macs" or "latency"


def hypervolumes(store: Store, study: str | StudyInfo, done: dict[str, int]) -> tuple[
        Point | None, tuple[float, float] | None, dict[str, MethodSummary]]:
    """Each method's (the keys of `done`: method -> proposals finished) front and hypervolume
    against one reference point (`storage.reference_point`: the full model's cost, MACs or
    latency, and twice its FID), in units of the full model."""
    full = store.full_model_point(study)
    cost = store.cost(study)  # MACs, or the measured latency of an --objective latency study
    out = {}
    for method, finished in done.items():
        front = store.front(study, method=method)
        out[method] = MethodSummary(method, finished, front,
                                    normalized_hypervolume(front, full, cost))
    return full, reference_point(full, cost), out
