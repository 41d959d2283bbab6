"""``invarbench eval --pending``: every registered card not yet evaluated with a suite, one after another."""

from __future__ import annotations

from pathlib import Path

import typer

from invarbench.cli.common import console, progress_bars, user_errors
from invarbench.cli.outcome import outcome_markdown, render_outcome
from invarbench.cli.summary import append_summary, code, md
from invarbench.evaluation import EvalOptions
from invarbench.evaluation.pending import PendingResult, evaluate_pending, plan_pending
from invarbench.store import Store


def eval_pending(options: EvalOptions, db: str | None, cards_dir: Path | None) -> None:
    """Plan, evaluate, report; exit code 1 when any card failed."""
    with user_errors():
        store = Store(db)
        plan = plan_pending(store, options.suite, cards_dir)
    total = len(plan.todo) + len(plan.broken)
    for card_id, run_id in plan.evaluated:
        typer.echo(f"evaluated already: {card_id} (run {run_id})")
    if not total:
        typer.echo(f"Nothing pending: every registered card has a finished full run of suite {options.suite}.")
        append_summary(f"### Pending evaluations\n\nNothing pending with suite {md(options.suite)}.")
        return
    typer.echo(f"{total} card(s) to evaluate with suite {options.suite}.")
    if options.limit is not None:
        typer.echo(f"--limit {options.limit}: smoke runs, never ranked; the cards stay pending.")

    def report(result: PendingResult) -> None:
        if result.ok:
            console.print(render_outcome(result.outcome))
        else:
            typer.echo(f"Error: {result.error}", err=True)

    try:
        with progress_bars() as progress:
            results = evaluate_pending(store, options, plan, progress, on_result=report)
    except KeyboardInterrupt:
        typer.echo(
            "Interrupted: the completed batches are stored; 'invarbench eval --pending' with the same options "
            "continues.",
            err=True,
        )
        raise typer.Exit(code=130) from None
    finally:
        store.close()
    failed = [r for r in results if not r.ok]
    ok = [r for r in results if r.ok]
    lines = [f"### {'❌' if failed else '✅'} Pending evaluations: {len(ok)} of {len(results)} evaluated", ""]
    lines += [outcome_markdown(r.outcome) for r in ok]
    if failed:
        lines += ["", "Failed:", ""] + [f"- {code(r.card)}: {md(r.error)}" for r in failed]
    append_summary("\n".join(lines))
    typer.echo(f"{len(ok)} of {len(results)} card(s) evaluated.")
    if failed:
        typer.echo(f"{len(failed)} failed:", err=True)
        for r in failed:
            typer.echo(f"  {r.card}: {r.error}", err=True)
        raise typer.Exit(code=1)
