"""The search's own error (torch-free, so the command line can catch it without loading models)."""


class SearchError(Exception):
    """A search cannot start or go on; the message names the problem and the fix."""
