"""Help texts written from a registry when the command line is built, so that plug-ins appear in ``--help``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer.models import OptionInfo

from invarbench.errors import InvarbenchError


class RegistryHelp(OptionInfo):
    """A Typer option whose help is written from a registry (``text()``) each time the command line is
    built, so that what was registered after this module was imported (plug-ins) is listed too. When a
    plug-in cannot be loaded, the help is ``fallback``: the command itself then reports the error."""

    def __init__(self, text: Callable[[], str], fallback: str, **kwargs: Any) -> None:
        # typer.Option's defaults (they differ from OptionInfo's own), then the help from ``text``.
        self.__dict__.update(vars(typer.Option(**kwargs)))
        self._text = text
        self._fallback = fallback

    @property
    def help(self) -> str:
        try:
            return self._text()
        except InvarbenchError:
            return self._fallback

    @help.setter
    def help(self, value: str | None) -> None:  # OptionInfo's constructor sets it; the registry decides
        pass
