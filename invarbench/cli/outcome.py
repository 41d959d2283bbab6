"""How one evaluation's outcome is shown: the terminal table and the job summary's section (``eval`` and
``eval --pending`` both show it)."""

from __future__ import annotations

from rich.table import Table

from invarbench.cli.summary import code, md
from invarbench.evaluation import EvalOutcome
from invarbench.metrics.stats import format_interval, format_number


def render_outcome(outcome: EvalOutcome) -> Table:
    title = (
        f"{outcome.card_id} · suite {outcome.suite.name} v{outcome.suite.version} · "
        f"{outcome.examples} examples · {outcome.device}"
        f"{f' · {outcome.model_dtype}' if outcome.model_dtype else ''} · run {outcome.run_id}"
    )
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("std. error", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("n", justify="right")
    for m in outcome.metrics:
        interval = format_interval(m.ci_low, m.ci_high)
        table.add_row(m.name, format_number(m.value), format_number(m.stderr), interval, str(m.n))
    caption = f"flags: {', '.join(outcome.flags)}" if outcome.flags else "no reliability flags"
    if not outcome.ranked:
        caption += (
            "; a smoke run (--limit) or a run on custom data (--data): stored and shown, never ranked on the "
            "leaderboard"
        )
    table.caption = caption
    return table


def outcome_markdown(outcome: EvalOutcome) -> str:
    """The job summary of one evaluation: its metrics with their intervals, and its flags."""
    lines = [
        f"### ✅ {code(outcome.card_id)}: suite {md(outcome.suite.name)} v{outcome.suite.version}, "
        f"{outcome.examples} examples, {md(outcome.device)}, run {outcome.run_id}",
        "",
        "| metric | value | 95 % CI | n |",
        "| --- | ---: | ---: | ---: |",
    ]
    for m in outcome.metrics:
        lines.append(f"| {md(m.name)} | {format_number(m.value)} | {format_interval(m.ci_low, m.ci_high)} | {m.n} |")
    lines.append("")
    lines.append(f"Flags: {', '.join(md(f) for f in outcome.flags)}" if outcome.flags else "No reliability flags.")
    if not outcome.ranked:
        lines.append("A smoke run (--limit) or a run on custom data: never ranked on the leaderboard.")
    return "\n".join(lines)
