"""User-facing errors of the evaluators package (no torch import here, so the CLI can catch them
without loading torch)."""


class EvaluatorError(Exception):
    """Bad input to the evaluators (a model, a plan, an option); the message names the fix."""
