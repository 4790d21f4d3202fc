"""What the dashboard shows, read from the store as plain JSON-ready dicts (no torch, no web).

The same dicts are the JSON API, feed the Plotly figures and fill the HTML templates, for the live
server and the static report alike:

- `study_list(store)`: every study with its counts and best values;
- `study_view(store, name)`: per method every evaluated plan, the Pareto front, the hypervolume and
  how it grew with the method's evaluations; the full model's point and the reference point;
- `plan_view(store, name, plan)`: one plan's numbers, its evaluations, its technique map and what
  is known about its sample images.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

import numpy as np

from dashboards import thinning
from evaluators.errors import EvaluatorError
from evaluators.plan import MAX_PLAN_BYTES, Plan
from search.methods import method_rank
from storage import (
    FULL_METHOD,
    CandidateInfo,
    EvaluationInfo,
    HistoryEntry,
    Point,
    Store,
    StoreError,
    normalized_hypervolume,
    reference_point,
)

MIN_PREFIX = 6  # the shortest plan-hash prefix the dashboard resolves
HASH_LENGTH = 64  # a plan hash: sha256 in hex
HEX_DIGITS = frozenset("0123456789abcdef")


class UnreadablePlan(StoreError):
    """A stored plan the dashboard will not show (too large, or not a plan this edgediff reads)."""


class NotFound(StoreError):
    """A study or plan the store does not hold (the server answers 404)."""


def study_list(store: Store) -> list[dict[str, Any]]:
    """Every study, oldest first: name, model, method, created_at, candidates, evaluations_ok,
    evaluations_failed, best_fid, min_macs."""
    return [_plain(asdict(summary)) for summary in store.list_studies()]


def study_view(store: Store, name: str) -> dict[str, Any]:
    """Everything the study page draws (see the module docstring); `version` changes whenever a
    new evaluation lands, so a page can tell when to redraw. A large study's clouds of points and
    curves are thinned (`dashboards.thinning`): `points_total` says how many plans a method has."""
    info = _study(store, name)
    version = store.evaluated_marker(name)  # read first: a write landing meanwhile redraws again
    progress = store.progress(name)  # one read for both plots: the front's rows are among these
    measured = [(plan, method, macs, fid) for _, plan, method, stage, status, macs, fid, _, _ in progress
                if stage == "full" and status == "ok" and macs is not None]
    view, full, fronts = _plot_data(store, name, measured, {row[2] for row in progress}, None)
    for method, data in view["methods"].items():
        steps = [(plan, stage, status, macs, fid, passed, finished)
                 for _, plan, m, stage, status, macs, fid, passed, finished in progress if m == method]
        data["history"], data["evaluated"] = thinning.curve(steps, full)
        data["hypervolume"] = normalized_hypervolume(fronts[method], full)
    statuses = list({row[0]: row[4] for row in progress}.values())  # each evaluation once
    return {
        "study": {
            "name": info.name, "model": info.model, "method": info.method,
            "created_at": info.created_at.isoformat(), "spec": json.loads(info.spec_json),
            "spec_hash": info.spec_hash, "notes": info.notes,
        },
        **view,
        "counts": {
            "plans": len({row[1] for row in progress}),
            "evaluations_ok": statuses.count("ok"),
            "evaluations_failed": statuses.count("failed"),
        },
        "rungs": [_plain(asdict(c)) for c in store.rung_correlations(name)],  # multi-fidelity
        "version": version,
    }


def points_view(store: Store, name: str, window: thinning.Window | None = None) -> dict[str, Any]:
    """What the front plot draws: per method its points (thinned, inside `window` if given: a zoom),
    `points_total` and its front; the study's front, the full model and the reference point, and
    `fid_range` (the lowest and highest FID of every plan)."""
    _study(store, name)
    return _plot_data(store, name, store.objectives(name), (), window)[0]


def _plot_data(store: Store, name: str, rows: list[Any], methods: Iterable[str],
               window: thinning.Window | None) -> tuple[dict[str, Any], Point | None, dict[str, list[Point]]]:
    """(`points_view`, the full model's point, each method's front) from `Store.objectives` rows;
    `methods`: listed even without points."""
    full = store.full_model_point(name)
    cloud = thinning.Cloud.of([(h, macs, fid) for h, _, macs, fid in rows])
    proposers = np.array([m for _, m, _, _ in rows], dtype=object)
    names = sorted((set(proposers.tolist()) | set(methods)) - {FULL_METHOD}, key=_method_order)
    fids = cloud.fid[np.isfinite(cloud.fid)]
    log_fid = bool(len(fids)) and float(fids.max()) > 4 * float(fids.min())
    front = set(thinning.front_hashes(cloud))
    shown, fronts = {}, {}
    for method in names:
        mine = cloud.where(proposers == method)  # a candidate per (method, plan): each plan once
        fronts[method] = set(thinning.front_hashes(mine))
        shown[method] = (len(mine), thinning.thin(mine, fronts[method], log_fid=log_fid, window=window))
    wanted = front | set().union(*fronts.values(), *(kept for _, kept in shown.values()))
    points = store.points(name, plan_hashes=sorted(wanted)) if wanted else []
    base = {} if full is None else _fields(full)
    dicts = {p.plan_hash: _against(p, base) for p in points}  # a point in several lists: one dict
    by_method = {}
    for method in names:
        total, kept = shown[method]
        keep = set(kept)
        by_method[method] = {
            "points": [dicts[p.plan_hash] for p in points if p.plan_hash in keep],
            "points_total": total,
            "front": [dicts[p.plan_hash] for p in points if p.plan_hash in fronts[method]],
        }
    return {**_full_and_reference(full), "methods": by_method,
            "front": [dicts[p.plan_hash] for p in points if p.plan_hash in front],
            "fid_range": [float(fids.min()), float(fids.max())] if len(fids) else None}, full, \
        {m: [p for p in points if p.plan_hash in fronts[m]] for m in names}


def front_view(store: Store, name: str, method: str | None = None) -> dict[str, Any]:
    """The study's Pareto front (of one proposing method if given) with the full model's point and
    the reference point: what `study_view` holds, without reading every evaluation."""
    _study(store, name)
    full = store.full_model_point(name)
    if method is not None:
        methods = sorted(set(store.methods(name)) - {FULL_METHOD}, key=_method_order)
        if method not in methods:
            known = ", ".join(methods) or "none"
            raise NotFound(f"study '{name}' has no method '{method}' (methods: {known})")
    return {"study": name, "method": method, **_full_and_reference(full),
            "front": [point_dict(p, full) for p in store.front(name, method=method)]}


def _full_and_reference(full: Point | None) -> dict[str, Any]:
    """`full` (the full model's point) and `reference_point` (`macs`, `fid`) of a study's views."""
    reference = reference_point(full)
    return {"full": None if full is None else point_dict(full, full),
            "reference_point": None if reference is None else {"macs": reference[0], "fid": reference[1]}}


def study_version(store: Store, name: str) -> str:
    """The `version` of `study_view(store, name)`, without building the view (an aggregate query
    and the study lookup)."""
    _study(store, name)
    return store.evaluated_marker(name)


def hypervolume_history(outcomes: Iterable[HistoryEntry], full: Point | None) -> list[dict[str, Any]]:
    """The hypervolume of one method's front after each of its finished evaluations.

    `outcomes` are the method's candidates with their evaluations (`Store.outcomes`). A plan
    counts once, when it is done for this method (its evaluation finished, or, for a plan another
    method had measured before, when this method proposed it): measured at the full stage (ok or
    failed), stopped by the screen, or failed at the screen. Only ok full-stage measurements add
    points to the front.
    """
    steps = [(o.plan_hash, o.stage, o.status, o.macs_per_image, o.fid, o.passed_screen,
              o.finished_at) for o in sorted(outcomes, key=_when_done)]
    return thinning.curve(steps, full)[0]


def plan_view(store: Store, name: str, plan: str) -> dict[str, Any]:
    """One plan of the study (`plan`: its hash or a unique prefix of it): its numbers, who proposed
    it, every evaluation, a summary of what it changes, its technique map and its samples."""
    info = _study(store, name)
    plan_hash, candidates = _resolve(store, name, plan)
    evaluations = [store.find_evaluation(model=info.model, spec_hash=info.spec_hash,
                                         plan_hash=plan_hash, stage=stage) for stage in ("screen", "full")]
    full = store.full_model_point(name)
    point = next(iter(store.points(name, plan_hash=plan_hash)), None)
    parsed = _readable_plan(name, plan_hash, candidates[0].plan_json)
    samples = store.samples(name, plan_hash)
    full_samples = None if full is None else store.samples(name, full.plan_hash)
    return {
        "study": name,
        "plan_hash": plan_hash,
        "is_full": full is not None and full.plan_hash == plan_hash,
        "full_plan_hash": None if full is None else full.plan_hash,
        "point": None if point is None else point_dict(point, full),
        "full": None if full is None else point_dict(full, full),
        "candidates": [{"method": c.method, "label": c.label, "created_at": c.created_at.isoformat()}
                       for c in candidates],
        "evaluations": [_evaluation_dict(e) for e in evaluations if e is not None],
        "footprint": _footprint(evaluations),
        "summary": plan_summary(parsed),
        "techniques": technique_map(parsed),
        "samples": _samples_dict(samples),
        "full_samples": _samples_dict(full_samples),
        "plan": parsed.to_dict(),
    }


def resolve_plan(store: Store, name: str, plan: str) -> str:
    """The full hash of the study's plan whose hash is `plan` or starts with it."""
    return _resolve(store, name, plan)[0]


def _resolve(store: Store, name: str, plan: str) -> tuple[str, list[CandidateInfo]]:
    """`resolve_plan`, with the candidates that proposed the plan (read by the same query)."""
    plan = plan.strip().lower()
    if len(plan) > HASH_LENGTH or not set(plan) <= HEX_DIGITS:
        shown = plan[:16] + ("..." if len(plan) > 16 else "")
        raise NotFound(f"'{shown}' is not a plan reference: give a plan hash or a prefix of it "
                       f"({MIN_PREFIX} to {HASH_LENGTH} hex digits)")
    if len(plan) < MIN_PREFIX:
        raise NotFound(f"plan '{plan}' is too short: give at least {MIN_PREFIX} characters of its hash")
    candidates = store.candidates(name, plan_prefix=plan)
    hashes = sorted({c.plan_hash for c in candidates})
    if not hashes:
        raise NotFound(f"study '{name}' has no plan '{plan}': pick one from its front or "
                       f"`edgediff front {name} --all`")
    if len(hashes) > 1:
        raise NotFound(f"plan '{plan}' matches {len(hashes)} plans of study '{name}': give more of the hash")
    return hashes[0], candidates


def download_name(name: str, plan_hash: str) -> str:
    """The file name a downloaded plan gets: `<study>-<hash prefix>.json`."""
    return f"{name}-{plan_hash[:12]}.json"


def plan_json_text(store: Store, name: str, plan: str) -> tuple[str, str]:
    """(full hash, plan file text) of one of the study's plans."""
    plan_hash = resolve_plan(store, name, plan)
    text = store.plan_json(name, plan_hash)
    _readable_plan(name, plan_hash, text)  # a plan this edgediff cannot read is not served
    return plan_hash, text


def _readable_plan(name: str, plan_hash: str, text: str) -> Plan:
    """The stored plan, or UnreadablePlan (too large, not strict JSON, invalid): one line, not a
    broken page."""
    if len(text) > MAX_PLAN_BYTES:
        raise UnreadablePlan(f"plan '{plan_hash[:12]}' of study '{name}' is stored as {len(text):,} "
                             f"characters, over the {MAX_PLAN_BYTES:,} a plan may have; it is not shown")
    try:
        return Plan.from_json(text)
    except EvaluatorError as err:
        raise UnreadablePlan(f"plan '{plan_hash[:12]}' of study '{name}' is stored but cannot be "
                             f"read ({err}); it is not shown") from None


def plan_summary(plan: Plan) -> dict[str, Any]:
    """What the plan changes, in a few named values (each section says its own)."""
    out: dict[str, Any] = {"model": plan.model.name, "model_class": plan.model.model_class,
                           **plan.sampling.summary()}
    for section in plan.sections:
        out.update(section.summary())
    return out


def _schedule_base(steps: int) -> dict[str, Any]:
    return {"branch": None, "row": ["full"] * steps, "depth_skip": None,
            "legend": ["full", "partial"]}


def _blocks_base(steps: int) -> dict[str, Any]:
    from evaluators.techniques._library import BLOCK_LEGEND

    return {"labels": [], "rows": [], "legend": list(BLOCK_LEGEND)}


# The kinds of technique map; a section draws into the one its class names (`view`): a layer x
# step heatmap (DiTFastAttn), a block x step map (diffusers' caches), a step timeline (U-Nets).
_MAP_BASES = {"attention": lambda steps: {}, "blocks": _blocks_base, "schedule": _schedule_base}


def technique_map(plan: Plan) -> dict[str, Any]:
    """The plan's per-step techniques, for the heatmap (transformers) or the timeline (U-Nets).

    kind "attention": `methods[layer][step]`; kind "blocks": `rows[part][step]` for each part of
    the block stack in `labels` (compute, cached, forecast, broadcast, or run-time where a
    threshold decides while generating); kind "schedule": `row[step]`, "full" where the step
    runs the whole network and "partial" where it runs only the shallow part (DeepCache, cache
    `branch`), and `depth_skip` (levels dropped at every step, or None). Each section adds its
    entries (`Technique.timeline`); a plan with a heatmap section is drawn as the heatmap.
    """
    steps = plan.num_steps
    kinds = {type(section).view for section in plan.sections}
    kind = next((k for k in ("attention", "blocks") if k in kinds), "schedule")
    out: dict[str, Any] = {"kind": kind, "steps": steps, **_MAP_BASES[kind](steps)}
    out["titles"] = []  # the sections drawn, named in the figure's title
    for section in plan.sections:
        if type(section).view == kind:
            out.update(section.timeline(steps))
            out["titles"].append(type(section).title)
    return out


def point_dict(point: Point, full: Point | None) -> dict[str, Any]:
    """A point with its ratios to the full model: `macs_ratio` (full MACs / MACs, the saving),
    `speedup` (full latency / latency) and `fid_delta` (FID - full FID)."""
    return _against(point, {} if full is None else _fields(full))


def _against(point: Point, base: dict[str, Any]) -> dict[str, Any]:
    """`point_dict` with the full model's fields already read (`base`, empty if unknown)."""
    out = _fields(point)  # NaN read back as None
    out["macs_ratio"] = _ratio(base.get("macs"), out["macs"])
    out["speedup"] = _ratio(base.get("latency"), out["latency"])
    out["fid_delta"] = None if base.get("fid") is None or out["fid"] is None else out["fid"] - base["fid"]
    return out


# --- pieces ------------------------------------------------------------------------------------------

def _study(store: Store, name: str) -> Any:
    info = store.find_study(name)
    if info is None:
        known = ", ".join(s.name for s in store.list_studies()) or "none yet"
        raise NotFound(f"no study '{name}' in this store (studies: {known}): run `edgediff search` first")
    return info


def _when_done(outcome: HistoryEntry) -> tuple[datetime, int]:
    finished = outcome.finished_at or outcome.started_at
    return max(outcome.proposed_at, finished), outcome.evaluation_id


def _evaluation_dict(evaluation: EvaluationInfo) -> dict[str, Any]:
    out = _plain(asdict(evaluation))
    out["extra"] = {k: v for k, v in evaluation.extra.items()
                    if k in ("passed_screen", "batch_size", "params")}
    return out


def _footprint(evaluations: list[EvaluationInfo | None]) -> dict[str, Any] | None:
    """The plan's parameter footprint (`params`, `skipped`, `skipped_share`, `skipped_bytes` by
    dtype) from its latest evaluation that counted it; None where none did."""
    for evaluation in reversed(evaluations):
        params = None if evaluation is None else evaluation.extra.get("params")
        if params and params.get("params"):
            return {**params, "skipped_share": params["skipped"] / params["params"]}
    return None


def _samples_dict(samples: Any) -> dict[str, Any] | None:
    if samples is None:
        return None
    return {"count": samples.count, "columns": samples.columns, "width": samples.width,
            "height": samples.height, "captions": list(samples.captions), "seeds": list(samples.seeds)}


def _method_order(method: str) -> tuple[int, str]:
    return method_rank(method), method


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return float(numerator) / float(denominator)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


_POINT_FIELDS = tuple(f.name for f in fields(Point))
_POINT_TUPLES = frozenset(f.name for f in fields(Point) if f.name in ("candidate_ids", "methods", "labels"))


def _fields(point: Point) -> dict[str, Any]:
    """A point's fields as strict JSON values. Written out for the point's known field types: a
    study page of 100,000 evaluations converts every point, and the generic `_plain` took seconds."""
    out: dict[str, Any] = {}
    for name in _POINT_FIELDS:
        value = getattr(point, name)
        if name in _POINT_TUPLES:
            value = list(value)
        elif isinstance(value, float) and not math.isfinite(value):
            value = None
        out[name] = value
    return out


def _plain(value: Any) -> Any:
    """Tuples as lists, datetimes as ISO text, NaN and infinities as None: strict JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
