"""The command line's GPU-scale evaluation options (`evaluate` and `search`) and the search's
objective: parsed here, checked by `EvalSpec` and `evaluators.settings`."""

from __future__ import annotations

import argparse

from evaluators.spec import DTYPES, MAX_REPEATS, MAX_SIDE, VAE_DECODES

OBJECTIVES = ("macs", "latency")  # what a search minimises beside the quality metric
LATENCY_REPEATS = 3  # --latency-repeats of a new --objective latency study when not given

RUNTIME_OPTIONS = {  # CLI option -> EvalSpec field
    "batch_size": "batch_size", "dtype": "dtype", "height": "height", "width": "width",
    "scheduler": "scheduler", "negative_prompt": "negative_prompt", "vae_decode": "vae_decode",
    "latency_repeats": "latency_repeats",
}


def _bounded(low: int, high: int, what: str) -> type:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text[:20]}' is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: give {what} {low}..{high}")
        return value

    return parse  # type: ignore[return-value]


def _gpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text[:20]}' is not a number") from None
    if not 0 <= value <= 64:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{value} is out of range: give 0 up to 64 GPUs (a "
                                         "fraction shares one GPU among workers)")
    return value


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    """Batch size, precision, image size, scheduler, negative prompt, VAE decoding, latency
    repeats: part of a new study's spec (an existing study keeps its own)."""
    p.add_argument("--batch-size", type=_bounded(1, 100_000, "images"),
                   help="images denoised together (new study: 100)")
    p.add_argument("--dtype", choices=DTYPES, help="precision of weights and activations "
                                                   "(new study: fp32)")
    p.add_argument("--height", type=_bounded(8, MAX_SIDE, "pixels"),
                   help="image height, for pipelines that take one (with --width)")
    p.add_argument("--width", type=_bounded(8, MAX_SIDE, "pixels"), help="image width")
    p.add_argument("--scheduler", help="a diffusers scheduler class of the model's family, e.g. "
                                       "DPMSolverMultistepScheduler (built with from_config)")
    p.add_argument("--negative-prompt", help="CFG's negative prompt (text-to-image models)")
    p.add_argument("--vae-decode", choices=VAE_DECODES,
                   help="VAE decoding: all at once (batch), one image at a time, in tiles")
    p.add_argument("--latency-repeats", type=_bounded(0, MAX_REPEATS, "repeats"),
                   help="timed generations of one warm batch per plan, median stored (new study: "
                        f"0 = time the pass itself; {LATENCY_REPEATS} with --objective latency)")


def add_search_runtime_options(p: argparse.ArgumentParser) -> None:
    """The search's objective and its workers' GPUs."""
    p.add_argument("--objective", choices=OBJECTIVES,
                   help="the cost minimised with the quality: MACs per image, or measured latency "
                        "per image relative to the full model's (new study: macs)")
    p.add_argument("--gpus-per-worker", type=_gpus,
                   help="GPUs per worker task (default 1 with --device cuda, else 0)")
