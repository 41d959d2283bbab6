"""The root Typer application: one sub-app per command group."""

from __future__ import annotations

import typer

from invarbench import __version__
from invarbench.cli import cards, db, results, site, suites
from invarbench.cli.eval import eval_command
from invarbench.cli.pack import pack_command

app = typer.Typer(
    name="invarbench",
    help="Measure how sensitive (PGD) and how excessively invariant (NSPGD, equi-confidence path "
    "widths) image classifiers are, store the scores with their provenance, and build a leaderboard.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # help text: lines of a paragraph are joined, paragraphs kept
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"invarbench {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """invarbench: a benchmark of excessive sensitivity and excessive invariance."""


app.command("eval")(eval_command)
app.add_typer(results.app, name="results")
app.add_typer(site.app, name="site")
app.add_typer(suites.app, name="suites")
app.add_typer(db.app, name="db")
app.add_typer(cards.app, name="cards")
app.command("pack")(pack_command)


def main() -> None:
    app()
