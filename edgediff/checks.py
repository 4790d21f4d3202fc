"""The one checking step `plan`, `evaluate` and `search` pass through before anything is written or
any work starts: the store URL, the study name and the strings stored beside it, the device, the
model, and the paths the command will write. Each problem is one CliError (or the package's own
one-line error) naming the value and the fix.

What needs the loaded model (the plan's fit, every range of it; the spec's classes and prompts)
is checked by the commands right after loading it, still before the store is opened for writing.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from edgediff.errors import CliError
from storage import resolve_url
from storage.models import Candidate

METHOD_LENGTH = Candidate.__table__.c.method.type.length  # 50: what PostgreSQL would refuse
LABEL_LENGTH = Candidate.__table__.c.label.type.length  # 200


def preflight(args: argparse.Namespace, *, remote_workers: bool = False) -> None:
    """Check every option of `args` that needs no model; `remote_workers`: the device is on a Ray
    cluster's workers, so only its spelling is checked here."""
    if getattr(args, "model", None) is not None:
        from evaluators.zoo import resolve

        resolve(args.model)  # an unknown model, a missing folder or a corrupt config.json
    if hasattr(args, "db"):
        resolve_url(args.db)  # a malformed or in-memory URL fails here
    if hasattr(args, "study") and hasattr(args, "model"):
        from edgediff.study_cli import study_name_of

        study_name_of(args)  # --study as given (an empty one is refused), else from the model
    check_length("--method", getattr(args, "method", None), METHOD_LENGTH)
    check_length("--label", getattr(args, "label", None), LABEL_LENGTH)
    if getattr(args, "device", None) is not None:
        check_device(args.device, available=not remote_workers)
    if getattr(args, "cache_dir", None):
        check_folder_target(args.cache_dir, "--cache-dir")
    if getattr(args, "out", None):
        check_file_target(args.out, "-o/--out")


def check_length(option: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise CliError(f"{option} is {len(value)} characters long; the store keeps at most {limit}: "
                       "shorten it")
    if value is not None and not value.isprintable():
        raise CliError(f"{option} holds a control character (such as a newline or tab): "
                       "give printable text")


def check_device(device: str, *, available: bool = True) -> None:
    """A torch device that exists (cpu, cuda[:N], mps); `available`: also here, now."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise CliError(f"--device '{device}' is not a torch device: use cpu, cuda or cuda:N") from None
    if parsed.type not in ("cpu", "cuda", "mps"):
        raise CliError(f"--device {device}: edgediff runs on cpu, cuda or mps, not {parsed.type}")
    if not available or parsed.type == "cpu":
        return
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise CliError("--device mps: this machine has no usable Apple GPU; use --device cpu")
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise CliError(f"--device {device}: this machine has no usable CUDA GPU (torch "
                           f"{torch.__version__}); use --device cpu")
        if parsed.index is not None and parsed.index >= count:
            raise CliError(f"--device {device}: this machine has {count} CUDA GPU(s); use "
                           f"cuda:0..cuda:{count - 1}")


def check_folder_target(folder: str, option: str) -> None:
    """`folder` is or can become a writable folder (no file in the way, a writable ancestor)."""
    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        raise CliError(f"{option} '{folder}' is a file, not a folder: give a folder")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CliError(f"{option} '{folder}' is under '{ancestor}', which is a file: give a folder "
                       "path with no file in the way")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise CliError(f"{option} '{folder}': '{ancestor}' is not writable; choose another folder")


def check_file_target(file: str, option: str) -> None:
    """`file` can be written: not a folder, in an existing writable folder."""
    path = Path(file).expanduser()
    if path.is_dir():
        raise CliError(f"{option} '{file}' is a folder: give a file name such as {path / 'best.json'}")
    if not path.parent.is_dir():
        raise CliError(f"folder '{path.parent}' does not exist: create it or choose another {option}")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise CliError(f"{option} '{file}': the folder '{path.parent}' is not writable; choose another")
