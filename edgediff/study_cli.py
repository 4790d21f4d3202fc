"""The store's commands: `plan`, `evaluate`, `studies`, `front`, `export` (parse, call, print)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgediff.checks import preflight
from edgediff.errors import CliError
from edgediff.runtime_options import RUNTIME_OPTIONS
from edgediff.tables import dumps, footprint, giga, memory, number, table
from storage import (
    Point,
    Store,
    check_same_study,
    check_study_name,
    describe_constraint,
    find_existing_study,
)

SPEC_OPTIONS = {  # CLI option -> EvalSpec field
    "images": "num_images", "seed": "seed", "steps": "num_inference_steps",
    "guidance": "guidance_scale", "screen_images": "screen_images",
    "screen_min_psnr": "screen_min_psnr", "reference": "reference", "feature": "feature",
    "quality": "quality", "clip_model": "clip_model",
}


# --- plan ------------------------------------------------------------------------------------------

def cmd_plan(args: argparse.Namespace) -> int:
    from evaluators.templates import uniform_plan
    from evaluators.zoo import load_model_on_meta

    name = plan_model(args)
    out = Path(args.out)
    preflight(args)  # -o, and --model when given that way
    model = load_model_on_meta(name)  # the config is enough: no weights are read
    plan = uniform_plan(
        name, model, steps=args.plan_steps, guidance_scale=args.guidance, attention=args.attention,
        from_step=args.from_step, window=args.window, deepcache_branch=args.deepcache_branch,
        interval=args.interval, drop_levels=args.drop_levels, gamma=args.gamma,
    )
    params = plan_footprint(model, plan)  # before the file is written: a failed count writes none
    plan.save(out)
    print(f"plan {plan.content_hash()[:12]} for {name} written to {out}")
    print(f"params never run: {footprint({'params': params})} of the denoiser's parameters, "
          f"{memory(params['skipped_bytes'])} that need not be loaded")
    return 0


def plan_footprint(model: Any, plan: Any) -> dict[str, Any]:
    """The plan's parameter footprint (`params`, `skipped`, `skipped_bytes` by dtype), counted on
    the meta model, as evaluations report it (`extra["params"]`)."""
    from evaluators.cost import count_footprint

    return count_footprint(model, plan).to_dict()


def plan_model(args: argparse.Namespace) -> str:
    """The model of `edgediff plan`: --model, or the deprecated positional MODEL."""
    old, new = args.model_positional, args.model
    if old is not None and new is not None and old != new:
        raise CliError(f"two models given ('{old}' and --model '{new}'): pass only --model")
    if (new or old) is None:
        raise CliError("edgediff plan needs the model: pass --model NAME (a registry name, local "
                       "folder or hub id)")
    return new or old


# --- evaluate --------------------------------------------------------------------------------------

def default_study_name(model: str) -> str:
    """A valid study name for a model: the registry name as it is, a hub id or a path with its
    '/' (a study is a path segment of the dashboard's URLs) turned into '-':
    `facebook/DiT-XL-2-256` -> `facebook-DiT-XL-2-256`."""
    parts = [p for p in model.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "-".join(parts)[-200:] or "model"


def study_name_of(args: argparse.Namespace) -> str:
    """`--study`, or the model's default study name; StoreError for a name that cannot be one
    (checked before anything is computed)."""
    name = args.study if args.study is not None else default_study_name(args.model)
    check_study_name(name)
    return name


def given_spec(args: argparse.Namespace) -> dict[str, Any]:
    options = {**SPEC_OPTIONS, **RUNTIME_OPTIONS}
    given = {field: getattr(args, opt) for opt, field in options.items()
             if getattr(args, opt, None) is not None}
    if args.classes is not None:
        given["classes"] = tuple(args.classes)
    if args.prompts is not None:
        try:
            lines = Path(args.prompts).read_text().splitlines()
        except OSError as err:
            raise CliError(f"cannot read prompts file '{args.prompts}' ({err.strerror}): give "
                               "a text file with one prompt per line") from None
        given["prompts"] = tuple(line.strip() for line in lines if line.strip())
    return given


def study_spec(study: Any, name: str, model: str, given: dict[str, Any]) -> Any:
    """The spec of an existing study (options may not contradict it), or a new spec."""
    from evaluators.spec import EvalSpec

    if study is None:
        return EvalSpec(**given)
    check_same_study(study, model=model)
    spec = EvalSpec.from_json(study.spec_json)
    clash = {f: v for f, v in given.items() if getattr(spec, f) != v}
    if clash:
        field, value = next(iter(clash.items()))
        raise CliError(f"study '{name}' was created with {field}={getattr(spec, field)!r}, not "
                           f"{value!r}: leave the option out or use another --study name")
    return spec


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Everything that can be wrong with the input is checked before the store is written."""
    from evaluators.evaluate import Evaluator
    from evaluators.plan import MEASURED_SCHEDULER, Plan
    from evaluators.runtime import check_plan_installs
    from evaluators.runtime.fit import check_geometry
    from evaluators.subjects import check_drivable
    from evaluators.zoo import resolve
    from search.evaluation import evaluate_candidate, open_study

    preflight(args)
    check_drivable(args.model)  # a family no subject drives (Qwen-Image, Wan)
    plan = Plan.load(args.plan)
    if plan.sampling.scheduler != MEASURED_SCHEDULER:
        raise CliError(f"{args.plan} says scheduler {plan.sampling.scheduler}, but edgediff measures "
                       f"plans with {MEASURED_SCHEDULER}: set \"scheduler\": \"{MEASURED_SCHEDULER}\" "
                       "(or leave it out)")
    entry = resolve(args.model)
    if entry.model_class and entry.model_class != plan.model.model_class:
        raise CliError(f"{args.plan} is a plan for a {plan.model.model_class} "
                           f"('{plan.model.name}') but {args.model} is a {entry.model_class}: "
                           "use a plan made for this model ('edgediff plan' writes one)")
    study_name = study_name_of(args)  # before any model is loaded or image generated
    existing = find_existing_study(args.db, study_name)  # an unreachable store fails here
    spec = study_spec(existing, study_name, args.model, given_spec(args))
    evaluator = Evaluator(args.model, spec, cache_dir=args.cache_dir, device=args.device,
                          progress=not args.json)
    check_plan_installs(evaluator.denoiser, plan)  # every range, before the store is written
    check_geometry(plan, evaluator.full_plan)  # a plan measured at another size
    evaluator.subject.conditions(spec, 1)  # a text-to-image model needs prompts
    if existing is None and not args.json:
        print(f"new study '{study_name}': evaluating the uncompressed model first "
              f"({spec.num_images} images)")
    evaluator.reference()  # a bad reference set or feature network fails before any write
    with Store.open(args.db) as store:
        study = open_study(store, study_name, evaluator)
        outcome = evaluate_candidate(store, study, evaluator, plan, method=args.method,
                                     label=args.label)
        full = store.full_model_point(study_name)
    if args.json:
        print(dumps({"study": study_name, "plan_hash": plan.content_hash(), "reused": outcome.reused,
                     "evaluations": list(outcome.evaluations), "full_model": full}))
        return 0
    rows = []
    for e in outcome.evaluations:
        ratio = full.macs / e.macs_per_image if full and e.macs_per_image else None
        speed = (full.latency / e.latency_per_image_s
                 if full and full.latency and e.latency_per_image_s else None)
        rows.append([e.stage, e.num_images, giga(e.macs_per_image), number(ratio, 2),
                     number(None if e.latency_per_image_s is None else e.latency_per_image_s * 1e3, 2),
                     number(speed, 2), number(e.fid), number(e.psnr, 2), number(e.mse, 5),
                     number(e.similarity, 4), number(e.class_accuracy, 3), footprint(e.extra)])
    print(table(["stage", "images", "GMACs/img", "x fewer", "ms/img", "speedup", "FID", "PSNR",
                 "MSE", "DiTFastAttn err", "class acc", "params never run"], rows,
                [False] + [True] * 11))
    state = "found in the store (not recomputed)" if outcome.reused else "evaluated and stored"
    fid = f", full model {full.objective.upper()} {number(full.quality)}" if full else ""
    print(f"plan {plan.content_hash()[:12]} in study '{study_name}': {state}{fid}")
    final = outcome.final
    if final.stage == "screen" and final.extra.get("passed_screen") is False:
        print(f"stopped at the screen: PSNR {final.psnr:.2f} dB is below {spec.screen_min_psnr}")
    return 0


# --- studies, front, export -----------------------------------------------------------------------

def cmd_studies(args: argparse.Namespace) -> int:
    with Store.open(args.db, create=False) as store:
        studies = store.list_studies()
    if args.json:
        print(dumps(studies))
        return 0
    if not studies:
        print("no studies yet: 'edgediff evaluate' or 'edgediff search' creates one")
        return 0
    rows = [[s.name, s.model, s.method, s.candidates, s.evaluations_ok, s.evaluations_failed,
             number(s.best_fid), giga(s.min_macs), s.created_at.strftime("%Y-%m-%d %H:%M")]
            for s in studies]
    print(table(["study", "model", "method", "candidates", "ok", "failed", "best FID",
                 "min GMACs/img", "created"], rows, [False] * 3 + [True] * 5 + [False]))
    return 0


def point_rows(points: list[Point], full: Point | None, front: set[str] | None = None) -> list[list]:
    rows = []
    for i, p in enumerate(points, 1):
        ratio = full.macs / p.macs if full and p.macs else None
        speed = full.latency / p.latency if full and full.latency and p.latency else None
        mark = "" if front is None else ("*" if p.plan_hash in front else "")
        rows.append([f"{i}{mark}", giga(p.macs), number(ratio, 2), number(speed, 2),
                     quality_text(p.quality, p.quality_low, p.quality_high),
                     quality_text(p.delta_to(full), p.delta_low, p.delta_high),
                     number(p.psnr, 2), number(None if p.latency is None else p.latency * 1e3, 2),
                     skipped_share(p), ",".join(p.methods),
                     ",".join(x for x in p.labels if x) if p.labels else "", p.plan_hash[:12]])
    return rows


def quality_text(value: float | None, low: float | None, high: float | None) -> str:
    """A value with its 95% interval: "21.300 [19.800, 23.100]" (the value alone without one)."""
    if value is None:
        return ""
    digits = 3 if abs(value) >= 0.1 or value == 0 else 5
    if low is None or high is None:
        return number(value, digits)
    return f"{number(value, digits)} [{number(low, digits)}, {number(high, digits)}]"


def point_headers(points: list[Point]) -> list[str]:
    """The table's headers, the quality columns named after the study's metric."""
    metric = (points[0].objective if points else "fid").upper()
    return ["#", "GMACs/img", "x fewer MACs", "measured speedup", f"{metric} [95%]",
            f"d{metric} paired [95%]",
            "PSNR", "ms/img", "params never run", "methods", "label", "plan"]


POINT_RIGHT = [True] * 9 + [False] * 3


def skipped_share(point: Point) -> str:
    """The share of the denoiser's parameters the plan never runs ("" where not counted)."""
    if not point.params or point.params_skipped is None:
        return ""
    return f"{point.params_skipped / point.params:.1%}"


def cmd_front(args: argparse.Namespace) -> int:
    with Store.open(args.db, create=False) as store:
        store.get_study(args.study)
        front = store.front(args.study, method=args.method)
        full = store.full_model_point(args.study)
        points = store.points(args.study, method=args.method) if args.all else None
        store_cost = store.cost(args.study)
        correlations = store.rung_correlations(args.study)
    if args.json:
        print(dumps({"study": args.study, "method": args.method, "objective": store_cost,
                     "front": front, "full_model": full, "rung_correlations": correlations,
                     **({"points": points} if points is not None else {})}))
        return 0
    if not front:
        print(f"study '{args.study}' has no full evaluations yet"
              + (f" from method '{args.method}'" if args.method else ""))
        return 0
    shown = points if points is not None else front
    marks = {p.plan_hash for p in front} if points is not None else None
    print(table(point_headers(shown), point_rows(shown, full, marks), POINT_RIGHT))
    what = f"{len(front)} plans on the front" + (f" of method '{args.method}'" if args.method else "")
    if points is not None:
        what += f" (marked *) among {len(points)} evaluated"
    if full:
        what += f"; full model: {giga(full.macs)} GMACs/img, {full.objective.upper()} {number(full.quality)}"
        if full.latency:
            what += f", {full.latency * 1e3:.2f} ms/img"
    if store_cost == "latency":
        what += "; the front minimises the measured latency (measured speedup), not MACs"
    print(what)
    if correlations:
        print("\nhow well each rung ranked the plans (Spearman's rho against later measurements):")
        print(correlation_table(correlations))
    return 0


def correlation_table(correlations: list[Any]) -> str:
    """The rank-correlation table of a multi-fidelity study (`Store.rung_correlations`)."""
    rows = [[c.stage, c.images, c.objective, f"{c.against} ({c.against_images})", c.plans,
             number(c.rho, 3)] for c in correlations]
    return table(["rung", "images", "metric", "against (images)", "plans", "Spearman rho"], rows,
                 [False, True, False, False, True, True])


def cmd_export(args: argparse.Namespace) -> int:
    from evaluators.plan import Plan

    given = {"max_fid": args.max_fid, "fid_within": args.fid_within, "max_macs": args.max_macs}
    text = describe_constraint(**given)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise CliError(f"folder '{out.parent}' does not exist: create it or choose another -o")
    confirmation, plan_text = None, None
    with Store.open(args.db, create=False) as store:
        point = store.best(args.study, method=args.method, **given)
        full = store.full_model_point(args.study)
        if args.confirm_images:
            confirmation = _confirm(store, args, given)
            point = store.points(args.study, plan_hash=confirmation.chosen.plan_hash)[0]
            text = _confirmed_text(text, confirmation, args.confirm_images)
            plan_text = _confirmed_plan(store.plan_json(args.study, point.plan_hash), confirmation,
                                        args.confirm_images)
        Plan.from_json(plan_text or store.plan_json(args.study, point.plan_hash))  # it loads
        export = store.export_plan(args.study, point, out, text, plan_text=plan_text)
    speedup = speedups(point, full)
    if args.json:
        confirmed = None if confirmation is None else {
            "study": confirmation.study, "point": confirmation.chosen, "full_model": confirmation.full,
            "refused": list(confirmation.refused)}
        print(dumps({"export": export, "point": point, "full_model": full, "speedup": speedup,
                     "confirmation": confirmed}))
        return 0
    print(table(point_headers([point]), point_rows([point], full), POINT_RIGHT))
    if confirmation is not None:
        print(f"confirmed on {args.confirm_images} held-out images (study '{confirmation.study}'):")
        print(table(point_headers([confirmation.chosen]),
                    point_rows([confirmation.chosen], confirmation.full), POINT_RIGHT))
    print(speedup_line(speedup))
    print(f"exported the plan chosen by '{text}' to {export.path}")
    return 0


def speedups(point: Point, full: Point | None) -> dict[str, float | None]:
    """The plan's speed-up over the full model: `predicted` from its MACs (full MACs / MACs) and
    `measured` from its latency per image (full latency / latency); None where unknown."""
    def ratio(base: float | None, value: float | None) -> float | None:
        return base / value if base and value else None

    if full is None:
        return {"predicted": None, "measured": None}
    return {"predicted": ratio(full.macs, point.macs), "measured": ratio(full.latency, point.latency)}


def speedup_line(speedup: dict[str, float | None]) -> str:
    return (f"speed-up over the full model: {number(speedup['predicted'], 2) or '?'}x predicted "
            f"from MACs, {number(speedup['measured'], 2) or '?'}x measured")


def _confirm(store: Store, args: argparse.Namespace, given: dict[str, Any]) -> Any:
    """The held-out confirmation (search.confirm). Each refused plan is named on stdout; when
    every plan tried breaks the constraint, one line naming what would qualify (exit 2) and no
    plan is written (the confirmation's measurements stay stored, for the next try)."""
    from evaluators.evaluate import Evaluator
    from search.confirm import confirm, what_would_qualify

    model = store.get_study(args.study).model
    result = confirm(store, args.study,
                     lambda spec: Evaluator(model, spec, cache_dir=args.cache_dir, device=args.device),
                     images=args.confirm_images, method=args.method, **given)
    for p in result.refused:
        delta = quality_text(p.delta_to(result.full), p.delta_low, p.delta_high)
        print(f"refused plan {p.plan_hash[:12]}: on {args.confirm_images} held-out images "
              f"{p.objective.upper()} - full reads {delta}, which breaks the constraint")
    if result.chosen is None:
        would = what_would_qualify(result, **given)
        raise CliError(f"no plan of study '{args.study}' meets '{describe_constraint(**given)}' on "
                       f"{args.confirm_images} held-out images ({len(result.refused)} tried)"
                       + (f"; {would}" if would else "")
                       + ": relax the constraint or search further; no plan was exported")
    return result


def _confirmed_text(text: str, confirmation: Any, images: int) -> str:
    """The export's constraint with the confirmed paired difference (the store keeps 200 chars)."""
    p = confirmation.chosen
    delta = quality_text(p.delta_to(confirmation.full), p.delta_low, p.delta_high)
    return f"{text}; confirmed on {images} held-out images: d{p.objective.upper()} {delta}"[:200]


def _confirmed_plan(plan_json: str, confirmation: Any, images: int) -> str:
    from search.confirm import confirmed_plan_text

    return confirmed_plan_text(plan_json, confirmation, images)


def add_store_option(p: argparse.ArgumentParser, *, json: bool = True) -> None:
    """--db (and, for commands that print a table, --json)."""
    p.add_argument("--db", help="store URL (SQLite file or SQLAlchemy URL such as postgresql://..."
                                "); default $EDGEDIFF_DB or sqlite:///edgediff-out/edgediff.db")
    if json:
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")

