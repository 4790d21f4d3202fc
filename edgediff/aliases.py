"""Old option spellings kept as aliases for a release: they work, and say once which to use.

One vocabulary across commands: `--model` names the model, `-o/--out` the file a command writes,
`--steps` the uncompressed model's (the study's) steps and `--plan-steps` a written plan's.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


class _Deprecated(argparse.Action):
    """Stores like the new option and prints one line naming it."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if values is None:  # an optional positional left out
            return
        old = option_string or f"the positional {self.metavar}"
        print(f"{parser.prog}: {old} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated(parser: argparse.ArgumentParser, old: str, new: str, dest: str,
                   **kwargs: Any) -> None:
    """`old` (an option, or a positional's name) as a deprecated spelling of option `new`."""
    if old.startswith("-"):
        parser.add_argument(old, dest=dest, action=_Deprecated, new=new, default=argparse.SUPPRESS,
                            help=f"deprecated spelling of {new}", **kwargs)
    else:
        parser.add_argument(dest, nargs="?", metavar=old, action=_Deprecated, new=new,
                            default=None, help=f"deprecated: use {new} {old}", **kwargs)
