"""What every command shares: error handling, consoles, progress bars and common options."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from invarbench.errors import InvarbenchError
from invarbench.progress import Advance, ProgressFactory

console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print ``Error: message`` as one line on stderr; return the exit to raise."""
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code=1)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn domain errors into one clear line on stderr and exit code 1 (no traceback)."""
    try:
        yield
    except InvarbenchError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        raise typer.Exit(code=130) from None


def yaml_mapping(text: str, option: str, example: str) -> dict[str, object]:
    """An option's value given as YAML/JSON that must be a mapping (e.g. ``--kwargs '{depth: 28}'``);
    a :class:`ValidationError` naming ``option`` and showing ``example`` otherwise."""
    import yaml

    from invarbench.errors import ValidationError

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise ValidationError(f"{option} must be a mapping such as '{example}', got '{text}'")
    return value


@contextmanager
def progress_bars() -> Iterator[ProgressFactory]:
    """A :data:`ProgressFactory` that draws rich progress bars on stderr."""
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("[dim]{task.fields[note]}"),  # what runs now, inside the current unit of work
    )
    bars = Progress(*columns, console=err_console, transient=False)
    started = False

    def factory(description: str, total: int) -> Advance:
        nonlocal started
        if not started:  # start drawing only when there is work: early errors stay one clean line
            bars.start()
            started = True
        task = bars.add_task(description, total=total, note="")

        def advance(n: int, note: str | None = None) -> None:
            bars.update(task, advance=n, note=note or "")

        return advance

    try:
        yield factory
    finally:
        if started:
            bars.stop()


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="Results database URL, e.g. sqlite:///results.db or postgresql://user@host/db. "
        "Default: $INVARBENCH_DB, else sqlite:///~/.local/share/invarbench/invarbench.db.",
        show_default=False,
    ),
]
CardsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cards-dir",
        help="Folder of model cards (DATASET/NAME.yaml). Default: $INVARBENCH_CARDS, else the "
        "model_cards/ folder of this checkout, else ./model_cards.",
        show_default=False,
    ),
]
