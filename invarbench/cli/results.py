"""``invarbench results``: stored runs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from invarbench.cli.common import DbOption, console, user_errors
from invarbench.store import Store

app = typer.Typer(help="Inspect stored evaluation runs.", no_args_is_help=True)


def _metric(run, name: str) -> str:  # noqa: ANN001 - a RunRecord
    for m in run.metrics:
        if m.name == name:
            return f"{m.value:.4f}"
    return "–"


@app.command("list")
def list_command(
    dataset: Annotated[str | None, typer.Option(help="Only runs on this data set.", show_default=False)] = None,
    model: Annotated[str | None, typer.Option(help="Only runs of this model card id.", show_default=False)] = None,
    db: DbOption = None,
) -> None:
    """List stored runs, oldest first, with their headline metrics."""
    with user_errors():
        runs = Store(db).list_runs(dataset=dataset, model=model)
    if not runs:
        console.print("No runs stored yet. Run 'invarbench eval MODEL' first.")
        return
    table = Table(title=f"{len(runs)} run(s)")
    for col, justify in (("run", "right"), ("model", "left"), ("suite", "left"), ("status", "left"),
                         ("examples", "right"), ("clean acc.", "right"), ("robust acc. L∞", "right"),
                         ("device", "left"), ("started (UTC)", "left")):
        table.add_column(col, justify=justify)
    for run in runs:
        table.add_row(
            str(run.id), run.model.card_id, f"{run.suite_name} v{run.suite_version}", run.status,
            str(run.examples_effective), _metric(run, "clean_accuracy"), _metric(run, "robust_accuracy_linf"),
            run.device, run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)
