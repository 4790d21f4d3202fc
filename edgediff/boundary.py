"""The command line's one error boundary: every failure becomes one line on stderr.

An expected failure (bad input, an unreachable or damaged store, a model that cannot load, a
device that is not there, a file that cannot be read or written) prints the problem and its fix and
exits with status 2. Anything else is a bug in edgediff: one line says so and where the traceback
was written (`log_folder()`), exit status 70 (EX_SOFTWARE). A closed stdout (`edgediff export
--json | head`) ends quietly.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from dashboards.server import DashboardError
from edgediff.errors import CliError
from edgediff.tables import one_line
from evaluators.errors import EvaluatorError
from search.errors import SearchError
from storage import StoreError
from storage.engine import first_line

LOG_ENV = "EDGEDIFF_LOG_DIR"
EXIT_INPUT = 2
EXIT_BUG = 70  # sysexits.h EX_SOFTWARE
EXIT_INTERRUPTED = 130
EXPECTED = (CliError, EvaluatorError, StoreError, SearchError, DashboardError)


def run_command(command: str, func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one subcommand; every failure is one line on stderr (see the module docstring)."""
    try:
        code = func(args)
        sys.stdout.flush()  # a closed pipe fails here, inside the boundary, not at exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        _say("edgediff: interrupted")
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the boundary: every failure is one line
        message = expected_message(err)
        if message is not None:
            _say(f"edgediff {command}: error: {one_line(message)}")
            return EXIT_INPUT
        log = write_traceback(command, err)
        where = f"the traceback is in {log}" if log else "the traceback could not be written"
        _say(f"edgediff {command}: internal error (a bug in edgediff, please report it): "
             f"{type(err).__name__}: {one_line(first_line(err))[:300]}; {where}")
        return EXIT_BUG


def expected_message(err: BaseException) -> str | None:
    """The one-line message of an expected failure, or None for a bug."""
    if isinstance(err, EXPECTED):
        return str(err)
    if isinstance(err, SQLAlchemyError) or _is_optuna_storage_error(err):
        return store_failure_message(first_line(err))
    if isinstance(err, UnicodeError):
        return f"cannot read or write text ({err}): files edgediff reads must be UTF-8"
    if isinstance(err, OSError):
        return os_message(err)
    return None


def store_failure_message(reason: str) -> str:
    """A database error after the store was opened, with the fix for the common ones."""
    low = reason.lower()
    if "readonly" in low or "read-only" in low or "read only" in low:
        fix = "the store is read-only: give the user write access to the file and its folder"
    elif "disk is full" in low or "no space" in low or "disk full" in low:
        fix = "the disk is full: free space and run the command again (nothing half-written is kept)"
    elif "json" in low:
        fix = ("a row holds text where JSON belongs (changed outside edgediff): restore the store "
               "from a backup, or delete that row")
    elif "malformed" in low or "not a database" in low or "corrupt" in low:
        fix = ("the database file is damaged: restore it from a backup, or recover it with "
               "'sqlite3 FILE .recover', or pass another --db")
    elif "locked" in low or "timeout" in low:
        fix = "another process holds the store: wait for it or raise the timeout in --db"
    else:
        fix = "check the database (--db or $EDGEDIFF_DB) and run the command again"
    return f"the store failed ({reason}); {fix}"


def os_message(err: OSError) -> str:
    where = f" '{err.filename}'" if err.filename else ""
    reason = err.strerror or str(err) or type(err).__name__
    if err.errno == errno.ENOSPC:
        return f"cannot write{where}: the disk is full; free space and run the command again"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot use{where} ({reason}): check its permissions or choose another path"
    return f"cannot use{where} ({reason}): check the path"


def log_folder() -> Path:
    """Where tracebacks of bugs go: $EDGEDIFF_LOG_DIR, else the system's temporary folder."""
    return Path(os.environ.get(LOG_ENV) or Path(tempfile.gettempdir()) / "edgediff-logs")


def write_traceback(command: str, err: BaseException) -> Path | None:
    """Write the traceback of `err` to a new file in `log_folder()`; its path, or None."""
    folder = log_folder()
    path = folder / f"edgediff-{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        path.write_text(f"edgediff {' '.join(sys.argv[1:])}\n{text}", encoding="utf-8",
                        errors="backslashreplace")
    except OSError:
        return None
    return path


def _is_optuna_storage_error(err: BaseException) -> bool:
    exceptions = sys.modules.get("optuna.exceptions")
    return exceptions is not None and isinstance(err, exceptions.StorageInternalError)


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
