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


class OptionError(ValidationError):
    """A bad value of one evaluation option. ``option`` is the option's name in
    :class:`invarbench.evaluation.options.EvalOptions` and in the Python API (``batch_size``); the message
    is written with ``{option}`` where that name goes, so that the command line can name its flag
    instead (:meth:`naming`). ``str(error)`` names the option as the Python API spells it."""

    def __init__(self, option: str, template: str) -> None:
        self.option = option
        self.template = template
        super().__init__(template.replace("{option}", option))

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # pickled with its option, not its message
        return (type(self), (self.option, self.template))

    def naming(self, name: str) -> str:
        """The message with ``name`` (a command-line flag such as ``--batch-size``) for the option."""
        return self.template.replace("{option}", name)
