"""The one exception type the suite raises for bad input.

The CLI prints an ``ActionBenchError`` as one line (no traceback) and exits with
status 2; anything else is a bug and keeps its traceback.
"""


class ActionBenchError(Exception):
    """A user-facing error: the message names the problem and what to do about it."""
