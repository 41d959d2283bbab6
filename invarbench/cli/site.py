"""``invarbench site``: the static leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from invarbench.cli.common import DbOption, console, user_errors
from invarbench.site import build_site
from invarbench.store import Store

app = typer.Typer(
    help="Build the static leaderboard site from stored results.", no_args_is_help=True, rich_markup_mode="markdown"
)


@app.command("build")
def build_command(
    out: Annotated[Path, typer.Option(help="Output folder for the static site (index.html and assets).")] = Path(
        "leaderboard/_site"
    ),
    db: DbOption = None,
) -> None:
    """Render the leaderboard into OUT: per data set, the newest finished full run of each model and suite, ranked;
    smoke runs (--limit) and runs on custom data (--data) listed apart, not ranked."""
    with user_errors():
        index = build_site(Store(db), out)
    console.print(f"Wrote {index}")
