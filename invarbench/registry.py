"""One generic name -> object registry with "did you mean ...?" errors, and one plug-in route.

Architectures, data sets, model formats and measurements are all looked up through this type, so an
unknown name fails the same way everywhere. A registry made with a :class:`PluginRoute` imports, the
first time it is read, the modules that route names: its built-in modules, the modules named
(comma-separated) in an environment variable, and those that installed packages declare under an
entry-point group; each registers its entries when imported (timm's and lm-evaluation-harness's habit).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from invarbench.errors import NotFoundError, ValidationError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ' Did you mean 'x'?' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True)
class PluginRoute:
    """Where a registry's entries come from besides the modules that import it: ``builtins``, modules
    imported first (by name, so that a lower layer can hold the registry its upper layers fill); ``env``,
    an environment variable naming modules (comma-separated); ``group``, an entry-point group."""

    env: str
    group: str
    builtins: tuple[str, ...] = ()


def import_plugins(kind: str, route: PluginRoute) -> None:
    """Import every module ``route`` names, in order: the built-ins, ``$env``'s, the entry points'.
    Raises :class:`ValidationError` naming a module that cannot be imported."""
    names = [n.strip() for n in os.environ.get(route.env, "").split(",") if n.strip()]
    entry_points = importlib.metadata.entry_points(group=route.group)
    for source, load in [
        *((n, lambda n=n: importlib.import_module(n)) for n in (*route.builtins, *names)),
        *((f"entry point {ep.name}", ep.load) for ep in entry_points),
    ]:
        try:
            load()
        except Exception as exc:  # noqa: BLE001 - a plug-in's import can fail in any way
            raise ValidationError(
                f"cannot load the {kind} module {source} ({type(exc).__name__}: {exc}): check ${route.env} "
                "or the package that declares it"
            ) from None


class Registry(Generic[T]):
    """A named collection of objects of one kind (``kind`` appears in error messages). With a
    ``plugins`` route, its modules are imported (once) the first time the registry is read."""

    def __init__(self, kind: str, plugins: PluginRoute | None = None) -> None:
        self.kind = kind
        self.plugins = plugins
        self._items: dict[str, T] = {}
        self._loaded = plugins is None

    def load_plugins(self, *, again: bool = False) -> None:
        """Import the modules of the registry's plug-in route, once (``again``: once more, e.g. after
        the environment variable changed). Raises :class:`ValidationError` naming a module that fails."""
        if self.plugins is None or (self._loaded and not again):
            return
        self._loaded = True  # set first: a plug-in module may read the registry while it registers
        try:
            import_plugins(self.kind, self.plugins)
        except ValidationError:
            self._loaded = False  # the next read says it again, where the command reports errors
            raise

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@registry.register("name")`` adds the decorated object under ``name``."""

        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        self.load_plugins()
        try:
            return self._items[name]
        except KeyError:
            raise NotFoundError(
                f"unknown {self.kind} '{name}'.{did_you_mean(name, self.names())}"
                f" Known: {', '.join(self.names()) or '(none)'}."
            ) from None

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._items)

    def in_order(self) -> list[T]:
        """The objects in the order they were registered."""
        self.load_plugins()
        return list(self._items.values())

    def remove(self, name: str) -> T:
        """Unregister ``name`` (a plug-in that is unloaded, a test's toy entry); raises :class:`NotFoundError`."""
        obj = self.get(name)
        del self._items[name]
        return obj

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.load_plugins()
        return len(self._items)
