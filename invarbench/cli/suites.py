"""``invarbench suites list|show``: the evaluation suites and their exact settings."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from invarbench.cli.common import console, user_errors
from invarbench.cli.registry_help import RegistryHelp
from invarbench.suites import list_suites, load_suite
from invarbench.suites.schema import suite_datasets, suite_names

app = typer.Typer(
    help="List the evaluation suites and show their settings.", no_args_is_help=True, rich_markup_mode="markdown"
)


@app.command("list")
def list_command() -> None:
    """List every suite with its data sets and versions."""
    with user_errors():
        suites = list_suites()
    table = Table(title="Suites")
    for column in ("suite", "dataset", "version", "description"):
        table.add_column(column, justify="right" if column == "version" else "left")
    for s in suites:
        table.add_row(s.name, s.dataset, str(s.version), s.description)
    console.print(table)


def _dataset_help() -> str:
    from invarbench.data import DATASETS

    return f"Show only this data set's version of the suite ({', '.join(DATASETS.names())}). Default: every data set."


@app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="Suite name, e.g. 'standard' or 'quick'.")],
    dataset: Annotated[
        str | None, RegistryHelp(_dataset_help, "Show only this data set's version of the suite.", show_default=False)
    ] = None,
) -> None:
    """Print the resolved settings of suite NAME (includes applied) as YAML, changelog included."""
    with user_errors():
        if dataset is not None:
            suites = [load_suite(name, dataset)]
        else:
            if name not in suite_names():
                load_suite(name, "")  # raises the "unknown suite, did you mean" error
            suites = [load_suite(name, d) for d in suite_datasets(name)]
    typer.echo("---\n".join(s.to_yaml() for s in suites), nl=False)
