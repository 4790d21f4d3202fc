"""The `edgediff` command line: parse, call one function, print."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dashboards.server import DEFAULT_HOST, DEFAULT_MAX_PLANS, DEFAULT_PORT, DEFAULT_REFRESH_S
from edgediff import __version__, dashboard_cli, search_cli, study_cli
from edgediff.aliases import add_deprecated
from edgediff.boundary import one_line, run_command
from edgediff.runtime_options import add_runtime_options, add_search_runtime_options
from evaluators.defaults import DEFAULT_CACHE_DIR, DEFAULT_GUIDANCE, DEFAULT_STEPS
from evaluators.plan import ATTENTION_METHODS, MAX_GUIDANCE, MAX_STEPS
from evaluators.spec import FEATURES, MAX_SEED, QUALITY
from evaluators.zoo import SHIPPED, SHIPPED_GENERATORS


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the problem and where to look for the fix."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


def _int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """A parser of integers >= `low` (and <= `high` if given)."""

    def parse(text: str) -> int:
        if len(text) > 40:
            raise argparse.ArgumentTypeError(f"'{text[:20]}...' is not an integer of a sensible size")
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in {low}..{high}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: give an integer {bound}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)
_seed = _int_at_least(0, MAX_SEED)
_steps = _int_at_least(1, MAX_STEPS)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"{value} is out of range: give a finite number >= 0")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 is out of range: give a number > 0")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is out of range: give a port 0..65535")
    return value


def _guidance(text: str) -> float:
    value = _non_negative_float(text)
    if not 1.0 <= value <= MAX_GUIDANCE:
        raise argparse.ArgumentTypeError(
            f"{value} is out of range: guidance is >= 1 (1 = off) and <= {MAX_GUIDANCE:g}")
    return value


def _list_of(kind: type, what: str, example: str) -> Callable[[str], list]:
    """A parser of comma-separated values >= 0 (`what` names them in errors)."""

    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of {what}") from None
        if not values or min(values) < 0:
            raise argparse.ArgumentTypeError(f"'{text}': give {what} >= 0, e.g. {example}")
        return values

    return parse


_class_list = _list_of(int, "labels", "1,7,9")
_delta_list = _list_of(float, "thresholds", "0.05,0.1")


def _command_line() -> str:
    """The command as typed, recorded beside what it produced so that it can be rerun."""
    return " ".join(["edgediff", *sys.argv[1:]])


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def cmd_models(args: argparse.Namespace) -> int:
    from evaluators.zoo import REGISTRY

    width = max(len(n) for n in REGISTRY)
    for entry in REGISTRY.values():
        where = "shipped" if entry.shipped else entry.source
        print(f"{entry.name:<{width}}  {entry.kind:<10}  {where:<44}  {entry.description}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from evaluators.zoo import train

    _set_threads(args.threads)
    out = Path(args.out) if args.out else None
    command = _command_line()
    if args.model == "digits-classifier":
        record = train.train_classifier(out, epochs=args.epochs, seed=args.seed, command=command)
        print(f"held-out accuracy {record.extra['test_accuracy']:.4f} in {record.seconds:.0f} s")
    else:
        record = train.train_generator(
            args.model, out, iterations=args.iterations, batch_size=args.batch_size,
            learning_rate=args.lr, seed=args.seed, command=command,
        )
        print(f"final loss {record.final_loss:.4f} in {record.seconds:.0f} s")
    return 0


def _print_quality(rows: list[dict]) -> None:
    head = f"{'model':<12} {'images':>6} {'steps':>5} {'guid.':>5} {'FID':>8} {'class acc':>9} {'ms/img':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['model']:<12} {r['num_images']:>6} {r['num_inference_steps']:>5} "
            f"{r['guidance_scale']:>5.1f} {r['fid']:>8.3f} {r['class_accuracy']:>9.2%} "
            f"{r['seconds_per_image'] * 1000:>7.1f}"
        )


def _spec(args: argparse.Namespace):
    from evaluators.sampling import SampleSpec

    return SampleSpec(
        num_images=args.images, num_inference_steps=args.steps,
        guidance_scale=args.guidance, seed=args.seed,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from evaluators.zoo.report import sample_shipped

    _set_threads(args.threads)
    results = sample_shipped(_spec(args), Path(args.out))
    _print_quality([asdict(quality) for quality, _ in results])
    for _, grid in results:
        print(f"samples: {grid}")
    return 0


def cmd_zoo_report(args: argparse.Namespace) -> int:
    from evaluators.zoo.report import write_zoo_report

    _set_threads(args.threads)
    metrics = write_zoo_report(_spec(args), Path(args.images_dir), _command_line(),
                               names=args.model)
    _print_quality([m for name, m in metrics.items() if name != "digits-classifier"])
    clf = metrics.get("digits-classifier")
    if clf:
        print(f"digits-classifier held-out accuracy {clf['test_accuracy']:.2%}, "
              f"real-vs-real FID {clf['real_fid_floor']:.3f}")
    print("model cards rewritten: " + ", ".join(metrics))
    return 0


def _add_sampling_options(p: argparse.ArgumentParser, images: int) -> None:
    p.add_argument("--images", type=_positive_int, default=images, help="images per model")
    p.add_argument("--steps", type=_steps, default=DEFAULT_STEPS,
                   help="sampling steps (DDIM; flow-matching Euler for digits-flux)")
    p.add_argument(
        "--guidance", type=_guidance, default=DEFAULT_GUIDANCE, help="CFG scale (1 = off)"
    )
    p.add_argument("--seed", type=_seed, default=0, help="seed of the first image")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgediff",
        description="Automated compression search for diffusion models (DeepCache, DiTFastAttn).",
    )
    parser.add_argument("--version", action="version", version=f"edgediff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", help="list the shipped models and the known real checkpoints")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "demo", help="sample the shipped digits models, save grids, print FID and class accuracy"
    )
    _add_sampling_options(p, images=200)
    p.add_argument("--out", default="edgediff-out", help="folder for the sample grids")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "zoo-report", help="measure the shipped models (1,000 samples each) and rewrite model cards"
    )
    _add_sampling_options(p, images=1000)
    p.add_argument("--images-dir", default="docs/images", help="folder for the sample grids")
    p.add_argument("--model", action="append", choices=SHIPPED_GENERATORS,
                   help="measure only this generator (repeatable; the others keep their cards)")
    p.set_defaults(func=cmd_zoo_report)

    p = sub.add_parser("train", help="train one of the embedded default models on the digits")
    p.add_argument("model", choices=SHIPPED)
    p.add_argument("--iterations", type=_positive_int, default=4000, help="generator iterations")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--lr", type=_non_negative_float, default=1e-3, help="peak learning rate")
    p.add_argument("--epochs", type=_positive_int, default=40, help="classifier epochs")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads")
    p.add_argument("--out", help="output folder (default: the shipped weights folder)")
    p.set_defaults(func=cmd_train)
    _add_store_commands(sub)
    return parser


def _add_store_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="write a hand-made plan: one technique at every step")
    p.add_argument("--model", help="registry name, local folder or hub id")
    add_deprecated(p, "MODEL", "--model", "model_positional")
    p.add_argument("-o", "--out", required=True, help="plan file to write")
    p.add_argument("--plan-steps", type=_steps, default=DEFAULT_STEPS,
                   help=f"the plan's DDIM steps (default {DEFAULT_STEPS})")
    add_deprecated(p, "--steps", "--plan-steps", "plan_steps", type=_steps)
    p.add_argument("--guidance", type=_guidance, default=DEFAULT_GUIDANCE, help="CFG scale")
    p.add_argument("--attention", choices=ATTENTION_METHODS, help="transformers: method per step")
    p.add_argument("--from-step", type=_positive_int, default=1, help="first step using it")
    p.add_argument("--window", type=_positive_int, help="wars window on each side (tokens)")
    p.add_argument("--deepcache-branch", type=_non_negative_int, help="U-Nets: DeepCache skip branch")
    p.add_argument("--interval", type=_positive_int, default=1, help="U-Nets: DeepCache interval")
    p.add_argument("--drop-levels", type=_positive_int, help="U-Nets: depth-skip levels")
    p.add_argument("--gamma", type=_non_negative_float, help="gamma timestep placement exponent")
    p.set_defaults(func=study_cli.cmd_plan)

    p = sub.add_parser("evaluate", help="evaluate one plan (MACs, latency, FID, fidelity) and store it")
    p.add_argument("--model", required=True, help="registry name, local folder or hub id")
    p.add_argument("--plan", required=True, help="plan JSON file")
    p.add_argument("--study", help="study to store it in (default: the model name, a hub id's '/' "
                                   "as '-')")
    p.add_argument("--method", default="manual", help="who proposed the plan (default: manual)")
    p.add_argument("--label", help="a short note shown beside the plan")
    _add_spec_options(p)
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads")
    study_cli.add_store_option(p)
    p.set_defaults(func=_with_threads(study_cli.cmd_evaluate))

    p = sub.add_parser("search", help="search plans: the paper's baseline (the DiTFastAttn greedy, "
                                      "the DeepCache grid) and Optuna, evaluated on Ray workers "
                                      "(resumable)")
    p.add_argument("--model", required=True, help="registry name, local folder or hub id")
    p.add_argument("--study", help="study name (default: the model name, a hub id's '/' as '-'); "
                                   "the same name resumes")
    search_cli.add_method_option(p)
    search_cli.add_rung_options(p)
    p.add_argument("--budget", type=_positive_int, default=10, help="evaluations per method")
    p.add_argument("--workers", type=_positive_int, default=1, help="evaluations in flight")
    p.add_argument("--time-limit", type=_positive_float, help="stop after this many seconds")
    p.add_argument("--address", help="Ray cluster to join ('auto' or host:port; default: local)")
    p.add_argument("--sampler", choices=("nsga2", "tpe", "gp"), default="nsga2",
                   help="Optuna sampler (default nsga2)")
    p.add_argument("--sampler-seed", type=_seed, default=0, help=f"Optuna sampler seed (0..{MAX_SEED})")
    p.add_argument("--deltas", type=_delta_list,
                   help="greedy thresholds, e.g. 0.05,0.1 (default: the published sweep 0..0.15)")
    p.add_argument("--calib-samples", type=_positive_int, help="greedy calibration samples (8)")
    p.add_argument("--calib-seed", type=_seed, help="greedy calibration seed (3)")
    p.add_argument("--window", type=_positive_int, help="greedy wars window (default tokens/8)")
    _add_spec_options(p)
    add_search_runtime_options(p)
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads per worker")
    p.add_argument("--fid-within", type=_non_negative_float, default=5.0,
                   help="export the cheapest plan with FID <= full model's + this (default 5)")
    p.add_argument("-o", "--out", help="where to write the best plan (default "
                                       "edgediff-out/<study>-best.json)")
    add_deprecated(p, "--export", "--out", "out")
    study_cli.add_store_option(p)
    p.set_defaults(func=search_cli.cmd_search)

    p = sub.add_parser("studies", help="list the studies in the store")
    study_cli.add_store_option(p)
    p.set_defaults(func=study_cli.cmd_studies)

    p = sub.add_parser("front", help="the Pareto front (MACs vs FID) of a study")
    p.add_argument("study")
    p.add_argument("--method", help="only the plans of this search method")
    p.add_argument("--all", action="store_true", help="every evaluated plan, front marked *")
    study_cli.add_store_option(p)
    p.set_defaults(func=study_cli.cmd_front)

    p = sub.add_parser("export", help="write the best plan under a constraint to a JSON file")
    p.add_argument("study")
    p.add_argument("-o", "--out", required=True, help="plan file to write")
    p.add_argument("--max-fid", type=_non_negative_float, help="cheapest plan with FID <= this")
    p.add_argument("--fid-within", type=_non_negative_float,
                   help="cheapest plan with FID <= the full model's + this")
    p.add_argument("--max-macs", type=_non_negative_float, help="lowest FID with MACs/image <= this")
    p.add_argument("--method", help="only the plans of this search method")
    p.add_argument("--confirm-images", type=_positive_int,
                   help="re-measure the admitted plans on this many held-out seeds first and export "
                        "the first that still meets the constraint (a plan that breaks it is refused)")
    p.add_argument("--device", default="cpu", help="torch device of the confirmation (cpu, cuda)")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR,
                   help="where the confirmation's uncompressed run is cached")
    study_cli.add_store_option(p)
    p.set_defaults(func=study_cli.cmd_export)

    p = sub.add_parser("dashboard", help="serve the web dashboard over the store (fronts, "
                                         "hypervolume, plans and their images)")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --host: the dashboard has no log-in")
    p.add_argument("--refresh", type=_non_negative_float, default=DEFAULT_REFRESH_S,
                   help="seconds between checks for new evaluations on a study page (0: never)")
    study_cli.add_store_option(p, json=False)
    p.set_defaults(func=dashboard_cli.cmd_dashboard)

    p = sub.add_parser("report", help="write a study's dashboard as one static HTML file")
    p.add_argument("study")
    p.add_argument("-o", "--out", required=True, help="HTML file to write")
    p.add_argument("--max-plans", type=_non_negative_int, default=DEFAULT_MAX_PLANS,
                   help=f"embed every plan's view up to this many plans, else only the fronts' "
                        f"(default {DEFAULT_MAX_PLANS})")
    study_cli.add_store_option(p, json=False)
    p.set_defaults(func=dashboard_cli.cmd_report)


def _add_spec_options(p: argparse.ArgumentParser) -> None:
    """The evaluation spec of a new study (an existing study keeps its own)."""
    p.add_argument("--images", type=_positive_int, help="images of the full pass (new study: 200)")
    p.add_argument("--seed", type=_seed, help="seed of image 0 (new study: 0)")
    p.add_argument("--steps", type=_steps, help="uncompressed model's steps (new study: 50)")
    p.add_argument("--guidance", type=_guidance, help="uncompressed model's CFG scale (new: 1.5)")
    p.add_argument("--screen-images", type=_non_negative_int,
                   help="images of the cheap first pass (0 = none)")
    p.add_argument("--screen-min-psnr", type=_non_negative_float,
                   help="PSNR (dB) a plan needs to pass the screen")
    p.add_argument("--classes", type=_class_list, help="class labels to cycle through, e.g. 1,7,9")
    p.add_argument("--prompts", help="text file, one prompt per line (text-to-image models)")
    p.add_argument("--reference", help="real images for FID/KID: 'digits', a folder, or a statistics "
                                       "file (.npz with mu and sigma, or .safetensors)")
    p.add_argument("--feature", choices=FEATURES, help="FID/KID feature space (inception for real models)")
    p.add_argument("--quality", choices=QUALITY, help="quality objective (new study: fid); fidelity: "
                                                      "1 - SSIM to the uncompressed model, no reference set")
    p.add_argument("--clip-model", help="local folder of a CLIP model: also measure the CLIP score")
    add_runtime_options(p)
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR,
                   help="where the uncompressed model's run is cached")


def _with_threads(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        _set_threads(args.threads)
        return func(args)

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    return run_command(args.command, func, args)


if __name__ == "__main__":
    raise SystemExit(main())
