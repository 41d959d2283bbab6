"""One generic name -> object registry with "did you mean ...?" errors.

Architectures, datasets and measurements are all looked up through this type, so an unknown
name fails the same way everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from invarbench.errors import NotFoundError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ' Did you mean 'x'?' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


class Registry(Generic[T]):
    """A named collection of objects of one kind (``kind`` appears in error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

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
        try:
            return self._items[name]
        except KeyError:
            raise NotFoundError(
                f"unknown {self.kind} '{name}'.{did_you_mean(name, self.names())}"
                f" Known: {', '.join(self.names()) or '(none)'}."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def in_order(self) -> list[T]:
        """The objects in the order they were registered."""
        return list(self._items.values())

    def remove(self, name: str) -> T:
        """Unregister ``name`` (a plug-in that is unloaded, a test's toy entry); raises :class:`NotFoundError`."""
        obj = self.get(name)
        del self._items[name]
        return obj

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
