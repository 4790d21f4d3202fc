"""Multi-fidelity search: rungs of growing image count, with successive halving between them.

    edgediff search --model digits-dit --images 64 --rungs 8,32,64 --keep 0.5

Every candidate is first measured on the spec's first 8 images by its paired fidelity to the
uncompressed model on the same seeds (1 - SSIM: cheap, no reference set); only the best `keep`
share of a rung goes on to the next, which measures the study's own quality metric (FID, KID or
fidelity) on more images, and the last rung is the ordinary full evaluation on all of the spec's
images: the one fronts, `best` and `export` read. Budget goes to the plans that look promising.

Promotion is asynchronous successive halving (ASHA, Li et al. 2020), so workers never wait for a
rung to fill: after each result at rung r, the plans of rung r ranked within the first
floor(n_r x keep) (n_r: plans measured there so far) go on, each once. The search has two
objectives, so "best" is the non-dominated order on (cost, the rung's metric) (NSGA-II's sort;
the cost is MACs, or the measured latency of an `--objective latency` search),
ties within a layer to the lower metric: a cheap plan of middling quality competes with the
expensive good ones instead of being dropped because its quality alone is worse.

A lower rung's measurement is stored as an evaluation at stage "rung-<images>" under the study's
spec hash (like the screen), so a resumed search takes it from the store, and
`Store.rung_correlations` later says how well each rung's ranking predicted the final one.
A plan that no rung promotes is told to its strategy as stopped (Optuna: pruned) once the search
has nothing left to ask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from evaluators.spec import EvalSpec
from search.errors import SearchError
from storage import EvaluationInfo
from storage.records import RUNG_PREFIX

DEFAULT_KEEP = 0.5


def rung_stage(images: int) -> str:
    """The stage name a lower rung's evaluations are stored under: "rung-8"."""
    return f"{RUNG_PREFIX}{images}"


def rung_spec(spec: EvalSpec, images: int, first: bool) -> EvalSpec:
    """What a lower rung measures: the spec's first `images` seeds (and conditions), no screen;
    the first rung scores paired fidelity to the uncompressed model (needs no reference set)."""
    return replace(spec, num_images=images, screen_images=0, screen_min_psnr=None,
                   quality="fidelity" if first else spec.quality)


def check_rungs(rungs: Sequence[int], keep: float, spec: EvalSpec) -> None:
    """SearchError naming the bad option and its fix."""
    if not rungs:
        return
    example = f"--rungs {max(2, spec.num_images // 8)},{spec.num_images}"
    if len(rungs) < 2:
        raise SearchError(f"--rungs needs at least two image counts, the last the study's --images "
                          f"({spec.num_images}): e.g. {example}")
    if any(b <= a for a, b in zip(rungs, rungs[1:], strict=False)) or rungs[0] < 2:
        raise SearchError(f"--rungs {','.join(map(str, rungs))}: give rising image counts of at "
                          f"least 2, e.g. {example}")
    if rungs[-1] != spec.num_images:
        raise SearchError(f"--rungs ends at {rungs[-1]} but the study measures {spec.num_images} "
                          f"images: end the rungs at --images, e.g. {example}")
    if spec.screen_images:
        raise SearchError("--rungs and --screen-images are two ways of a cheap first pass: give "
                          "one (the first rung is the screen of a multi-fidelity search)")
    if not 0 < keep < 1:
        raise SearchError(f"--keep {keep} is out of range: give the share of a rung that goes on, "
                          f"between 0 and 1 (e.g. {DEFAULT_KEEP})")


def rung_value(info: EvaluationInfo) -> float | None:
    """The number a rung ranks plans by: the quality metric its evaluation measured."""
    quality = info.extra.get("quality") or {}
    value = quality.get("value")
    return float(value) if value is not None else info.fid


@dataclass
class Ladder:
    """The plans measured at each lower rung and which went on (pure Python: tested alone).

    `rungs`: image counts of the lower rungs and the final one; `keep`: the share promoted;
    `results[r]`: plan hash -> (cost, metric) at lower rung r."""

    rungs: tuple[int, ...]
    keep: float = DEFAULT_KEEP
    results: list[dict[str, tuple[float, float]]] = field(default_factory=list)
    promoted: list[set[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.results = [{} for _ in self.rungs[:-1]]
        self.promoted = [set() for _ in self.rungs[:-1]]

    @property
    def lower(self) -> int:
        """How many rungs come before the full evaluation."""
        return len(self.rungs) - 1

    def add(self, rung: int, plan_hash: str, macs: float, value: float) -> None:
        self.results[rung][plan_hash] = (float(macs), float(value))

    def ranking(self, rung: int) -> list[str]:
        """The rung's plans, best first: non-dominated layers on (MACs, metric), within a layer by
        metric, then MACs, then hash."""
        left = dict(self.results[rung])
        order: list[str] = []
        while left:
            layer = [h for h, (m, v) in left.items()
                     if not any(m2 <= m and v2 <= v and (m2, v2) != (m, v) for m2, v2 in left.values())]
            layer.sort(key=lambda h: (left[h][1], left[h][0], h))
            order += layer
            for h in layer:
                del left[h]
        return order

    def promote(self, rung: int) -> list[str]:
        """The plans of `rung` that go on now (ranked within the first floor(n x keep), not
        promoted before); they are marked promoted."""
        quota = int(len(self.results[rung]) * self.keep + 1e-9)
        chosen = [h for h in self.ranking(rung)[:quota] if h not in self.promoted[rung]]
        self.promoted[rung].update(chosen)
        return chosen


def rebuild(ladder: Ladder, store: Any, study: Any, cost: str = "macs") -> None:
    """The ladder of a resumed search, from the store: each rung's results, and as promoted the
    plans measured at the next rung (or in full, after the last lower rung)."""
    stages = [rung_stage(n) for n in ladder.rungs[:-1]] + ["full"]
    measured = [{p.plan_hash: p for p in store.points(study, stage=s)} for s in stages]
    for rung in range(ladder.lower):
        for plan_hash, p in measured[rung].items():
            spent = p.latency if cost == "latency" else p.macs
            if spent is not None and p.quality is not None:
                ladder.add(rung, plan_hash, spent, p.quality)
        ladder.promoted[rung].update(h for h in measured[rung] if h in measured[rung + 1])


class RungSteps:
    """The driver's side of the rungs: a mixin of `search.driver._Search`, which provides the
    store, the study, the jobs (`_submit`, `_send_full`, `_record`) and `followers`. A plan
    climbing the rungs is in `climbing` (plan hash -> its proposal, strategy and plan) until it
    is sent to the full evaluation or stopped."""

    ladder: Ladder | None
    climbing: dict[str, tuple[Any, Any, Any]]  # plan hash -> (proposal, strategy, plan)
    followers: dict[str, list[tuple[Any, Any]]]
    store: Any
    study: Any
    config: Any
    job: dict[str, Any]
    measured: int
    failed: int

    def _enter(self, plan_hash: str, rung: int) -> None:
        """The plan stands at `rung`: measure it there (a stored measurement is taken as it is),
        or, past the last lower rung, send it to the full evaluation."""
        ladder = self.ladder
        assert ladder is not None
        proposal, strategy, plan = self.climbing[plan_hash]
        if rung == ladder.lower:
            del self.climbing[plan_hash]
            self._send_full(proposal, strategy, plan)
            return
        stored = self._stored_rung(plan_hash, rung)
        if stored is not None:
            self._rung_result(plan_hash, rung, stored)
            return
        from search.tasks import Job

        spec = rung_spec(self.config.spec, ladder.rungs[rung], first=rung == 0)
        job = Job("evaluate", plan=plan, **{**self.job, "spec": spec})
        self._submit(job, "rung", proposal, strategy, plan_hash, rung)

    def _stored_rung(self, plan_hash: str, rung: int) -> EvaluationInfo | None:
        assert self.ladder is not None
        study = self.study
        found = self.store.find_evaluation(
            model=study.model, spec_hash=study.spec_hash, plan_hash=plan_hash,
            stage=rung_stage(self.ladder.rungs[rung]))
        return found if found is not None and found.status == "ok" else None

    def _rung_measured(self, pending: Any, out: Any) -> None:
        """A rung job's result: stored at the rung's stage under the study's spec hash, then the
        promotions it brings."""
        assert self.ladder is not None
        proposal, plan_hash, rung = pending.proposal, pending.plan_hash, pending.rung
        images = self.ladder.rungs[rung]
        stage, spec_hash = rung_stage(images), self.study.spec_hash
        out = replace(out, measurements=tuple(replace(m, stage=stage, spec_hash=spec_hash)
                                              for m in out.measurements),
                      failure=None if out.failure is None else replace(
                          out.failure, stage=stage, num_images=images))
        outcome = self._record(proposal.plan, proposal.method, proposal.label, out)
        self.measured += 1
        stored = None if outcome.failed else self._stored_rung(plan_hash, rung)
        if stored is None:
            self.failed += 1
            self._finish(plan_hash, outcome)
            return
        self._rung_result(plan_hash, rung, stored)

    def _rung_result(self, plan_hash: str, rung: int, info: EvaluationInfo) -> None:
        assert self.ladder is not None
        value = rung_value(info)
        spent = info.latency_per_image_s if self.config.objective == "latency" else info.macs_per_image
        if spent is None or value is None:
            self._finish(plan_hash, _stopped(info.macs_per_image))
            return
        self.ladder.add(rung, plan_hash, spent, value)
        going = self.ladder.promote(rung)
        if plan_hash in self.ladder.promoted[rung] and plan_hash not in going:
            going.append(plan_hash)  # promoted by an earlier run of the search
        for promoted in going:
            if promoted in self.climbing:
                self._enter(promoted, rung + 1)

    def _finish(self, plan_hash: str, outcome: Any) -> None:
        """Tell the plan's proposal (and those waiting on the same plan) how it ended."""
        proposal, strategy, plan = self.climbing.pop(plan_hash)
        strategy.tell(proposal, outcome)
        for other, other_strategy in self.followers.pop(plan_hash, []):
            self._add_candidate(plan, other)
            other_strategy.tell(other, outcome)

    def _stop_climbing(self) -> bool:
        """Once nothing is left to ask or measure: every plan no rung promoted is told it stopped
        (its cost known, its quality not measured in full). Whether any was."""
        assert self.ladder is not None
        waiting = list(self.climbing)
        for plan_hash in waiting:
            found = self.store.points(self.study, plan_hash=plan_hash, stage=rung_stage(self.ladder.rungs[0]))
            self._finish(plan_hash, _stopped(found[0].macs if found else None))
        return bool(waiting)

    def rung_counts(self) -> str:
        """The progress line's part: plans measured at each lower rung ("rungs 8:12 32:6")."""
        if self.ladder is None:
            return ""
        counts = " ".join(f"{n}:{len(r)}" for n, r in zip(self.ladder.rungs, self.ladder.results,
                                                          strict=False))
        return f" | rungs {counts}"


def _stopped(macs: float | None) -> Any:
    from search.strategies import ProposalOutcome

    return ProposalOutcome(macs=macs, stopped=True)
