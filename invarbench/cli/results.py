"""``invarbench results``: list, show, compare, export, import and verify stored runs and results files."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from invarbench.cli.common import CardsDirOption, DbOption, console, fail, progress_bars, user_errors
from invarbench.errors import InvarbenchError, ValidationError
from invarbench.evaluation.verify import DEFAULT_BATCHES, verify_file
from invarbench.leaderboard_policy import CUSTOM_DATA, SMOKE, Standing
from invarbench.metrics.stats import format_interval, format_number
from invarbench.store import Store
from invarbench.store.csv_view import csv_text
from invarbench.store.documents import json_stream
from invarbench.store.export import LEFT_OUT_REASONS, export_selection, picked_runs
from invarbench.store.provenance import PROVENANCE_FIELDS
from invarbench.store.results_files import import_path, write_json_tree

app = typer.Typer(
    help="Inspect, compare, export, import and verify stored evaluation runs.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

DatasetOption = Annotated[str | None, typer.Option(help="Only runs on this data set.", show_default=False)]
ModelOption = Annotated[
    str | None, typer.Option(metavar="ID", help="Only runs of this model card id.", show_default=False)
]
RunArgument = Annotated[int, typer.Argument(help="A run id, as 'invarbench results list' shows it.")]


class ExportFormat(str, Enum):
    json = "json"
    csv = "csv"


_num = format_number


def _metric(run, name: str) -> str:  # a RunRecord
    for m in run.metrics:
        if m.name == name:
            return _num(m.value)
    return "–"


def _ci(m) -> str:  # a MetricRecord
    return format_interval(m.ci_low, m.ci_high)


def _when(ts) -> str:  # a datetime or None
    return ts.strftime("%Y-%m-%d %H:%M:%S") if ts is not None else "–"


def _bytes(n: int | None) -> str:
    if n is None:
        return "–"
    return f"{n / 2**20:.1f} MiB"


def _provenance_rows(run) -> list[tuple[str, str]]:  # a RunRecord
    """(label, text) of every provenance field listed by show and compare, in the provenance type's order."""
    return [(f.label, escape(f.text(run))) for f in PROVENANCE_FIELDS if f.listed]


def _settings_paths(value, prefix: str = "") -> dict[str, str]:  # JSON-ready data
    """Every leaf of a settings mapping by its dotted path (``measurements.pgd_linf.steps``), as JSON text."""
    if isinstance(value, dict) and value:
        out: dict[str, str] = {}
        for key, inner in value.items():
            out.update(_settings_paths(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: json.dumps(value, ensure_ascii=False)}


def _settings_differ(a, b) -> list[str]:  # RunRecords
    """The lines compare prints when the two runs' suite settings hashes differ (none when they are equal)."""
    if a.suite_settings_hash == b.suite_settings_hash:
        return []
    lines = [
        f"Suite settings differ: run {a.id} and run {b.id} were measured with different suite settings "
        "(their hashes differ)."
    ]
    unrecorded = [run.id for run in (a, b) if run.suite_settings is None]
    if unrecorded:
        lines.append(f"Run {' and run '.join(map(str, unrecorded))} recorded no suite settings.")
        return lines
    pa, pb = _settings_paths(a.suite_settings), _settings_paths(b.suite_settings)
    for path in [*pa, *(p for p in pb if p not in pa)]:
        if pa.get(path) != pb.get(path):
            lines.append(f"  {path}: A {pa.get(path, 'absent')}, B {pb.get(path, 'absent')}")
    return lines


def _standing(st: Standing) -> str:
    """Where a finished run stands on the leaderboard, in words."""
    if st.kind == CUSTOM_DATA:
        return "not ranked: a run on custom data (--data)"
    if st.kind == SMOKE:
        of = "an unknown number" if st.full_examples is None else str(st.full_examples)
        return f"not ranked: a smoke run over {st.run.examples_effective} of the suite's {of} examples (--limit)"
    return "ranked: a full run on the test split"


@app.command("list")
def list_command(dataset: DatasetOption = None, model: ModelOption = None, db: DbOption = None) -> None:
    """List stored runs, oldest first: examples evaluated (n), clean accuracy, PGD L∞ robust accuracy and flags."""
    with user_errors():
        runs = Store(db).list_runs(dataset=dataset, model=model)
    if not runs:
        console.print("No runs stored yet. Run 'invarbench eval MODEL' first.")
        return
    table = Table(title=f"{len(runs)} run(s)", box=box.SIMPLE_HEAD)

    # Ids, status and numbers are what users copy or scan for: never shortened, whatever the width;
    # the device and the start time fold onto more lines instead.
    def whole(col: str, values: list[str], justify: str = "left") -> None:
        table.add_column(col, justify=justify, no_wrap=True, min_width=max(len(v) for v in [col, *values]))

    whole("run", [str(r.id) for r in runs], "right")
    whole("model", [r.model.card_id for r in runs])
    whole("suite", [f"{r.suite_name} v{r.suite_version}" for r in runs])
    whole("status", [r.status for r in runs])
    whole("n", [str(r.examples_effective) for r in runs], "right")
    whole("clean", ["0.0000"], "right")
    whole("L∞", ["0.0000"], "right")
    # Flags travel with the numbers they qualify; device and time fold onto more lines instead.
    table.add_column("flags", overflow="fold")
    table.add_column("device", overflow="fold")
    whole("started (UTC)", [_when(r.started_at)[:16] for r in runs])
    for run in runs:
        table.add_row(
            str(run.id),
            run.model.card_id,
            f"{run.suite_name} v{run.suite_version}",
            run.status,
            str(run.examples_effective),
            _metric(run, "clean_accuracy"),
            _metric(run, "robust_accuracy_linf"),
            " ".join(run.flags or []) or "–",
            run.device,
            _when(run.started_at)[:16],
        )
    console.print(table)
    # The flags again below the table: a narrow terminal drops the column, never these lines.
    for run in runs:
        if run.flags:
            console.print(f"run {run.id} flags: {', '.join(run.flags)}", soft_wrap=True)


@app.command("show")
def show_command(run_id: RunArgument, db: DbOption = None) -> None:
    """Show one run: its provenance, metrics, stored per-example values and artifacts."""
    with user_errors():
        store = Store(db)
        run = store.get_run(run_id)
        standing = store.standing_of([run])[0] if run.status == "finished" else None
    model = run.model
    info = Table(title=f"run {run.id} · {model.card_id} · {run.suite_name} v{run.suite_version}", show_header=False)
    info.add_column("field", style="bold")
    info.add_column("value")
    rows = [
        ("status", run.status + (f" ({run.error})" if run.error else "")),
        ("model", f"{model.name} ({model.card_id}, {model.training_method})"),
        ("card sha256", model.card_sha256),
        ("model file sha256", model.file_sha256),
        ("hub", f"{model.hub_repo}@{model.hub_revision}" if model.hub_repo else "–"),
        *_provenance_rows(run),
        ("leaderboard", _standing(standing) if standing is not None else f"not ranked: the run is {run.status}"),
        ("started / finished (UTC)", f"{_when(run.started_at)} / {_when(run.finished_at)}"),
        ("duration", "–" if run.duration_s is None else f"{run.duration_s:.1f} s"),
        ("peak memory", _bytes(run.peak_memory_bytes)),
        ("attempts", str(run.attempts)),
        ("flags", ", ".join(run.flags) if run.flags else "none"),
        ("uid", run.uid),
    ]
    for field, value in rows:
        info.add_row(field, value)
    console.print(info)

    if run.metrics:
        metrics = Table(title="metrics")
        for col, justify in (
            ("metric", "left"),
            ("value", "right"),
            ("std. error", "right"),
            ("95% CI", "right"),
            ("n", "right"),
        ):
            metrics.add_column(col, justify=justify)
        for m in run.metrics:
            metrics.add_row(m.name, _num(m.value), _num(m.stderr), _ci(m), str(m.n))
        console.print(metrics)

    per_measurement: dict[str, tuple[int, int, list[str]]] = {}
    for e in run.examples:
        batches, count, fields = per_measurement.get(e.measurement, (0, 0, sorted(e.values)))
        length = max((len(v) for v in e.values.values()), default=0)
        per_measurement[e.measurement] = (batches + 1, count + length, fields)
    if per_measurement:
        stored = Table(title="stored per-example values")
        for col, justify in (("measurement", "left"), ("batches", "right"), ("values", "right"), ("fields", "left")):
            stored.add_column(col, justify=justify)
        for name, (batches, count, fields) in sorted(per_measurement.items()):
            stored.add_row(name, str(batches), str(count), ", ".join(fields))
        console.print(stored)
    for a in run.artifacts:
        console.print(f"artifact {a.name} ({a.media_type}, {a.size_bytes} bytes, sha256 {a.sha256[:12]}…)")


@app.command("compare")
def compare_command(run_a: RunArgument, run_b: RunArgument, db: DbOption = None) -> None:
    """Compare two runs metric by metric (B − A), and list where their provenance differs."""
    with user_errors():
        store = Store(db)
        a, b = store.get_run(run_a), store.get_run(run_b)
    table = Table(title=f"run {a.id} ({a.model.card_id}) vs run {b.id} ({b.model.card_id})")
    for col, justify in (
        ("metric", "left"),
        (f"A: run {a.id}", "right"),
        ("A 95% CI", "right"),
        (f"B: run {b.id}", "right"),
        ("B 95% CI", "right"),
        ("B − A", "right"),
        ("CIs overlap", "left"),
    ):
        table.add_column(col, justify=justify)
    ma = {m.name: m for m in a.metrics}
    mb = {m.name: m for m in b.metrics}
    for name in [*ma, *(n for n in mb if n not in ma)]:
        x, y = ma.get(name), mb.get(name)
        diff = _num(y.value - x.value) if x is not None and y is not None else "–"
        overlap = "–"
        if x is not None and y is not None and None not in (x.ci_low, x.ci_high, y.ci_low, y.ci_high):
            overlap = "yes" if x.ci_low <= y.ci_high and y.ci_low <= x.ci_high else "no"
        table.add_row(
            name,
            _num(x.value) if x else "–",
            _ci(x) if x else "–",
            _num(y.value) if y else "–",
            _ci(y) if y else "–",
            diff,
            overlap,
        )
    console.print(table)
    provenance = [(label, text, text_b) for (label, text), (_, text_b) in zip(_provenance_rows(a), _provenance_rows(b))]
    rows = [
        ("model card", a.model.card_id, b.model.card_id),
        ("card sha256", a.model.card_sha256, b.model.card_sha256),
        ("model file sha256", a.model.file_sha256, b.model.file_sha256),
        *provenance,
        ("status", a.status, b.status),
    ]
    differ = [row for row in rows if row[1] != row[2]]
    if differ:
        prov = Table(title="provenance that differs")
        for col in ("field", "A", "B"):
            prov.add_column(col)
        for row in differ:
            prov.add_row(*row)
        console.print(prov)
        for line in _settings_differ(a, b):
            console.print(escape(line), highlight=False)
    else:
        labels = ", ".join(label for label, _, _ in provenance)
        console.print(f"Same model snapshot, status and provenance ({labels}).")


_LEFT_OUT_WORDS = {
    SMOKE: "smoke run(s) (--limit)",
    CUSTOM_DATA: "on custom data (--data)",
    "superseded": "superseded by a newer full run",
    "unfinished": "not finished",
}


def _left_out_line(left_out) -> str | None:  # a Counter of reasons
    """``Left out N run(s): ...`` for the JSON export, or None when it left nothing out."""
    total = sum(left_out.values())
    if not total:
        return None
    parts = [f"{left_out[reason]} {_LEFT_OUT_WORDS[reason]}" for reason in LEFT_OUT_REASONS if left_out[reason]]
    hint = "; export one with --run ID" if total > left_out["unfinished"] else ""
    return f"Left out {total} run(s): {', '.join(parts)}{hint}"


@app.command("export")
def export_command(
    format: Annotated[
        ExportFormat,
        typer.Option(
            "--format", help="json: the interchange format, one document per run; csv: one row per (run, metric)."
        ),
    ] = ExportFormat.json,
    out: Annotated[
        Path | None,
        typer.Option(
            help="json: a folder, written as DATASET/MODEL__SUITE-vVERSION.json (e.g. "
            "leaderboard/results; a smoke or custom-data run's name has a __smoke-… or __custom-data-… "
            "suffix); csv: a file. Default: standard output.",
            show_default=False,
        ),
    ] = None,
    run: Annotated[
        list[int] | None,
        typer.Option(
            "--run",
            metavar="ID",
            help="Export exactly this run (repeat for more): any finished run, smoke "
            "runs and runs on custom data included. Not with --dataset or --model.",
            show_default=False,
        ),
    ] = None,
    dataset: DatasetOption = None,
    model: ModelOption = None,
    db: DbOption = None,
) -> None:
    """Export results: JSON, the runs the leaderboard ranks; CSV, every run; or with --run, the runs named.

    JSON: per (model card, suite name, suite version), the newest (highest run id) finished full run, i.e.
    on the data set's own test split over the suite version's full number of examples. Left out, and
    counted on stderr: smoke runs (--limit), runs on custom data (--data), full runs superseded by a
    newer one, unfinished runs. CSV: one row per (run, metric) of every run, of any status. --run ID
    exports exactly that finished run, smoke and custom-data runs included, in either format.
    """
    with user_errors():
        if run and (dataset or model):
            raise ValidationError("--run exports exactly the runs it names: leave out --dataset and --model")
        store = Store(db)
        picked = picked_runs(store, run) if run else None
        if format is ExportFormat.csv:
            rows = [st.run for st in picked] if picked is not None else store.list_runs(dataset=dataset, model=model)
            text = csv_text(rows)
            if out is None:
                typer.echo(text, nl=False)
            else:
                if out.is_dir():
                    raise ValidationError(f"{out} is a folder: the CSV export writes one file")
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text, encoding="utf-8")
                typer.echo(f"Wrote {out}", err=True)
            return
        left_out_line = None
        if picked is None:
            selection = export_selection(store, dataset=dataset, model=model)
            chosen, left_out_line = selection.runs, _left_out_line(selection.left_out)
        else:
            chosen = picked
        if out is None:
            typer.echo(json_stream(st.run for st in chosen), nl=False)
            if left_out_line:
                typer.echo(left_out_line, err=True)
            return
        if out.exists() and not out.is_dir():
            raise ValidationError(f"{out} is a file: the JSON export writes a folder of files")
        files = write_json_tree(chosen, out)
    for file in files:
        typer.echo(f"Wrote {file}", err=True)
    typer.echo(f"Exported {len(files)} run(s) to {out}", err=True)
    if left_out_line:
        typer.echo(left_out_line, err=True)


@app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(help="A results JSON file, or a folder of them (e.g. leaderboard/results).")],
    db: DbOption = None,
) -> None:
    """Import exported JSON results; runs already in the database (same uid) are left as they are."""
    notes: list[str] = []
    with user_errors():
        results = import_path(Store(db), path, unproven=notes.append)
    for note in notes:  # imported, but its metrics could not be recomputed: site build --results refuses it
        typer.echo(f"Warning: {note}. Imported as it is; 'site build --results' refuses such a file.", err=True)
    for r in results:
        typer.echo(f"{'imported as run' if r.added else 'already present as run'} {r.run_id}: {r.source}")
    added = sum(r.added for r in results)
    typer.echo(f"{added} run(s) imported, {len(results) - added} already present.")


@app.command("verify")
def verify_command(
    files: Annotated[
        list[Path], typer.Argument(help="Results files (leaderboard/results/DATASET/MODEL__SUITE-vN.json).")
    ],
    batches: Annotated[
        int,
        typer.Option(
            "--batches",
            metavar="K",
            help="Batches to re-run per file: the run's first batch, then a sample drawn from its seed. "
            "A K at least the run's number of batches re-runs them all.",
        ),
    ] = DEFAULT_BATCHES,
    device: Annotated[
        str, typer.Option(metavar="auto|cpu|cuda", help="auto (a CUDA GPU when available, else the CPU), cpu or cuda.")
    ] = "auto",
    cards_dir: CardsDirOption = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of downloaded data sets (for torchvision data sets).", show_default=False),
    ] = None,
) -> None:
    """Re-run K seeded batches of each run on its registered card's model and compare them with the stored
    per-example values: exactly on the device class that produced them, within a documented tolerance elsewhere.

    Prints one line per file, OK or MISMATCH (the batch, example, field and both values); a file that cannot be
    re-run (another card or suite than the registered one, custom data) is refused with one line. Exit code 1
    when any file is not OK. See docs/store.md.
    """
    if batches < 1:
        raise fail(f"--batches must be at least 1, got {batches}")
    failed = 0
    with progress_bars() as progress:
        for file in files:
            try:
                verdict = verify_file(
                    file, batches=batches, device=device, cards_dir=cards_dir, data_dir=data_dir, progress=progress
                )
            except InvarbenchError as exc:
                typer.echo(f"Error: {exc}", err=True)
                failed += 1
                continue
            except KeyboardInterrupt:
                typer.echo("Interrupted.", err=True)
                raise typer.Exit(code=130) from None
            typer.echo(verdict.line())
            failed += not verdict.ok
    if failed:
        raise typer.Exit(code=1)
