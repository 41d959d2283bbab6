"""The model format registry: every format a card's ``format`` may name, with what it owns.

A format is one :class:`ModelFormat` entry: its ``name`` (what a card writes), the ``suffix`` its file
must have, whether it ``needs_architecture`` (weights only, for a registered architecture) or carries
its own graph, a one-line ``description`` and ``load``, which turns the verified file into a module.
The card schema validates ``format`` against this registry, ``cards new`` guesses a format from the
file's suffix with it, the ``--format`` help and the docs list it, and the model loader calls the
entry's ``load``: a new format is one module that calls :func:`register_format` and nothing else.

The registry lives here, with the cards (which import nothing of ``models/``); the built-in formats
(``safetensors`` and ``torch-export``) register from :mod:`invarbench.models.formats`, which is
imported by name, like a plug-in, the first time the registry is read. Formats of one's own come from the
modules named in ``$INVARBENCH_FORMATS`` (comma-separated) or an ``invarbench.formats`` entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invarbench.registry import PluginRoute, Registry

__all__ = ["FORMATS", "ModelFormat", "format_choices", "format_for_file", "register_format"]


@dataclass(frozen=True)
class ModelFormat:
    """One model format.

    ``name``: what a card's ``format`` says (lowercase letters, digits and ``-``); ``suffix``: the file
    suffix its file must have (``.safetensors``), lower case, with the dot; ``needs_architecture``: True
    when the file holds weights only and the card must name a registered ``architecture``, False when
    the file carries its own graph and the card must not; ``description``: one line for the help and the
    docs; ``load(path, ref) -> torch.nn.Module``: the module of the already size-capped and
    sha256-verified file at ``path`` for the card ``ref`` (an :class:`invarbench.cards.catalog.CardRef`),
    raising :class:`invarbench.errors.ValidationError` with one line naming the card and the fix when the
    file is not one of its format. Raises ``ValueError`` for a malformed name or suffix."""

    name: str
    suffix: str
    needs_architecture: bool
    description: str
    load: Callable[[Path, Any], Any]

    def __post_init__(self) -> None:
        if not self.name or not all(c.islower() or c.isdigit() or c == "-" for c in self.name):
            raise ValueError(f"a model format's name is lowercase letters, digits and '-', got '{self.name}'")
        if not self.suffix.startswith(".") or self.suffix != self.suffix.lower() or len(self.suffix) < 2:
            raise ValueError(
                f"model format {self.name}: suffix must be lower case and start with '.', got '{self.suffix}'"
            )


FORMATS_ENV = "INVARBENCH_FORMATS"
FORMATS: Registry[ModelFormat] = Registry(
    "model format", PluginRoute(FORMATS_ENV, "invarbench.formats", builtins=("invarbench.models.formats",))
)


def register_format(fmt: ModelFormat) -> ModelFormat:
    """Add ``fmt`` to :data:`FORMATS` (``ValueError`` when its name is taken)."""
    FORMATS.add(fmt.name, fmt)
    return fmt


def format_choices(sep: str = ", ") -> str:
    """The registered formats' names in registration order, for help texts and errors."""
    return sep.join(f.name for f in FORMATS.in_order())


def format_for_file(name: str) -> ModelFormat | None:
    """The registered format whose suffix ``name`` ends with (case-insensitive; the longest suffix wins),
    or None when none does."""
    lower = name.lower()
    matches = [f for f in FORMATS.in_order() if lower.endswith(f.suffix)]
    return max(matches, key=lambda f: len(f.suffix)) if matches else None


TABLE_START = "<!-- formats-table:start (python -m invarbench.cards.formats --write docs/model-cards.md) -->"
TABLE_END = "<!-- formats-table:end -->"


def formats_table() -> str:
    """The registered formats as the Markdown table docs/model-cards.md shows, between its markers."""
    rows = [
        f"| `{f.name}` | `{f.suffix}` | {'required' if f.needs_architecture else 'not allowed'} | {f.description} |"
        for f in FORMATS.in_order()
    ]
    head = "| `format` | the file ends in | `architecture` | the file holds |\n|---|---|---|---|"
    return "\n".join([TABLE_START, head, *rows, TABLE_END])


def main(argv: list[str] | None = None) -> int:
    """``python -m invarbench.cards.formats [--write FILE]``: print the table, or replace it in FILE."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--write", type=Path, help="replace the marked block in this file (docs/model-cards.md)")
    args = parser.parse_args(argv)
    from invarbench.cards import formats  # the registry the formats register in (not __main__'s copy)

    table = formats.formats_table()
    if args.write is None:
        print(table)
        return 0
    text = args.write.read_text(encoding="utf-8")
    if TABLE_START not in text or TABLE_END not in text:
        raise SystemExit(f"{args.write} has no formats-table markers: add them where the table belongs")
    before, rest = text.split(TABLE_START, 1)
    args.write.write_text(before + table + rest.split(TABLE_END, 1)[1], encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
