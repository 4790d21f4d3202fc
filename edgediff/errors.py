"""The command line's own user-facing error (printed as one line, exit status 2)."""


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""
