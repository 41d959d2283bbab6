"""``invarbench db``: the results database's schema (its migrations)."""

from __future__ import annotations

import typer
from rich.table import Table

from invarbench.cli.common import DbOption, console, user_errors
from invarbench.store import Store

app = typer.Typer(
    help="Show or upgrade the results database's schema.", no_args_is_help=True, rich_markup_mode="markdown"
)


@app.command("status")
def status_command(db: DbOption = None) -> None:
    """Show the database's schema revision and which migrations are applied or pending (changes nothing)."""
    with user_errors():
        store = Store(db, migrate_schema=False)
        status = store.schema_status()
    if status.legacy:
        current = "none (tables made by invarbench 0.1.0; 'invarbench db upgrade' adopts them)"
    else:
        current = status.current or "none (empty database)"
    typer.echo(f"Database: {store.display_url()}")
    typer.echo(f"Schema revision: {current}; newest: {status.head}")
    table = Table()
    for col in ("revision", "migration", "state", "applied (UTC)"):
        table.add_column(col)
    for m in status.migrations:
        when = m.applied_at.strftime("%Y-%m-%d %H:%M:%S") if m.applied_at else "–"
        table.add_row(m.revision, m.description, "applied" if m.applied else "pending", when)
    console.print(table)
    if status.up_to_date:
        typer.echo("Up to date.")
    else:
        typer.echo(
            f"{len(status.pending)} migration(s) pending: run 'invarbench db upgrade' "
            "(any other command upgrades it too)."
        )


@app.command("upgrade")
def upgrade_command(db: DbOption = None) -> None:
    """Apply the pending migrations, in one transaction. The data is kept: nothing is rebuilt."""
    with user_errors():
        store = Store(db, migrate_schema=False)
        applied = store.upgrade()
        head = store.schema_status().head
    if applied:
        typer.echo(f"Upgraded {store.display_url()} to schema revision {head} (applied {', '.join(applied)}).")
    else:
        typer.echo(f"{store.display_url()} is already at the newest schema revision {head}.")
