"""User-facing errors of the evaluators package (no torch import here, so the CLI can catch them
without loading torch)."""


class UnusableImagesError(RuntimeError):
    """A generation that gave images no metric can score (NaN or infinite pixels): the plan's own
    failure, recorded as a failed evaluation with this message; not bad input."""


class EvaluatorError(Exception):
    """Bad input to the evaluators (a model, a plan, an option); the message names the fix."""
