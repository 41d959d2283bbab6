"""Domain errors. Every error a user can cause derives from :class:`InvarbenchError`.

The CLI turns these into one line on stderr and exit code 1; anything else is a bug and keeps
its traceback.
"""


class InvarbenchError(Exception):
    """An error caused by input or environment, with a message that names the fix."""


class NotFoundError(InvarbenchError):
    """A named thing (model id, architecture, dataset, suite, run) does not exist."""


class ValidationError(InvarbenchError):
    """A file or value is malformed (a card, a suite, an option)."""


class ModelOutputError(InvarbenchError):
    """A model produced unusable output (NaN/Inf logits, wrong shape)."""
