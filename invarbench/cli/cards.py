"""``invarbench cards``: list, show, validate and scaffold model cards; list architectures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from invarbench.cards.schema import TRAINING_METHODS
from invarbench.cli.common import CardsDirOption, DbOption, console, user_errors, yaml_mapping
from invarbench.cli.registry_help import RegistryHelp
from invarbench.cli.summary import append_summary, code, md
from invarbench.errors import InvarbenchError, NotFoundError, ValidationError

app = typer.Typer(
    help="Model cards: list, show, validate and create them.", no_args_is_help=True, rich_markup_mode="markdown"
)


def _source(card) -> str:  # a ModelCard
    hub = card.source.hub
    return f"hub:{hub.repo_id}@{hub.revision[:8]}" if hub else f"file:{card.source.path}"


def _threat(card) -> str:  # a ModelCard
    t = card.training
    if t.norm is None or t.eps is None:
        return "–"
    return f"{t.norm} {t.eps:.4g}"


@app.command("list")
def list_command(cards_dir: CardsDirOption = None) -> None:
    """List the registered model cards (an invalid card is shown with its error)."""
    from invarbench.cards.catalog import card_paths, default_cards_dir, load_card

    root = cards_dir or default_cards_dir()
    paths = card_paths(root)
    if not paths:
        typer.echo(f"No model cards in {root}. Create one with 'invarbench cards new'.")  # no wrapping, no markup
        return
    rows = []
    broken = 0
    for path in paths:
        try:
            card = load_card(path, check_location=True, cards_dir=root).card
        except InvarbenchError as exc:
            broken += 1
            typer.echo(f"Error: {exc}", err=True)
            continue
        rows.append((card.id, card.name, card.training.method, _threat(card), card.format, _source(card)))
    table = Table(title=f"{len(paths)} model card(s) in {root}")
    # Ids are what users copy into 'eval' and 'show': never shorten them, squeeze the other columns.
    table.add_column("id", no_wrap=True, min_width=max((len(r[0]) for r in rows), default=2))
    for col in ("name", "training", "threat model", "format", "source"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if broken:
        raise typer.Exit(code=1)


@app.command("show")
def show_command(
    model: Annotated[str, typer.Argument(help="A card id such as 'mnist5k/lenet-standard', or a card's path.")],
    cards_dir: CardsDirOption = None,
) -> None:
    """Print a card's validated fields, its file and its checksum."""
    from invarbench.cards.catalog import resolve_card

    with user_errors():
        ref = resolve_card(model, cards_dir)
    card = ref.card
    data = card.model_dump(mode="json", exclude_none=True)
    for field in ("norm", "eps"):  # an explicit null says "not stated upstream": show it, do not hide it
        if getattr(card.training, field) is None and field in card.training.model_fields_set:
            data["training"][field] = None
    typer.echo(f"# {ref.path}  (card sha256 {ref.sha256})")
    if card.origin is not None:
        o = card.origin
        typer.echo(f"# upstream: {o.repository} at {o.commit[:12]}, {o.path} (sha256 {o.sha256[:16]}…, {o.license})")
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100), nl=False)


@app.command("validate")
def validate_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Card files to check. Default: every card under the cards folder.", show_default=False),
    ] = None,
    changed: Annotated[
        str | None,
        typer.Option(
            "--changed",
            metavar="BASE",
            help="Check only the cards added, modified or renamed since the git revision BASE (e.g. "
            "origin/main; compared from its merge base with HEAD to the working tree, new files included), "
            "list the deleted ones, and check the rules over every card (unique ids, each file where its id "
            "says). Not with PATH.",
            show_default=False,
        ),
    ] = None,
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Check each Hub card on the Hub: repository, pinned revision and file exist, size within the "
            "cap, sha256 matches (from the Hub's metadata; a file without LFS metadata is downloaded). With "
            "HF_HUB_OFFLINE=1, in the local Hub cache.",
        ),
    ] = False,
    load: Annotated[
        bool, typer.Option("--load", help="Also download (if needed) and load each model, and check its logits.")
    ] = False,
    cards_dir: CardsDirOption = None,
) -> None:
    """Check cards: schema, location, data set, architecture and the model file's checksum.

    Exit code 1 when any card fails; each failure is one 'Error: ...' line on stderr. In GitHub Actions
    ($GITHUB_STEP_SUMMARY set) the outcome is also appended to the job summary as Markdown.
    """
    from invarbench.card_checks import check_card
    from invarbench.cards.catalog import card_paths, default_cards_dir

    root = cards_dir or default_cards_dir()
    if changed is not None:
        if paths:
            typer.echo("Error: give card files or --changed BASE, not both", err=True)
            raise typer.Exit(code=1)
        _validate_changed(changed, root, load=load, online=online)
        return
    targets = list(paths) if paths else card_paths(root)
    if not targets:
        typer.echo(f"Error: no model cards to validate in {root}", err=True)
        raise typer.Exit(code=1)
    failures = 0
    outcomes: dict[Path, object] = {}
    for path in targets:
        try:
            result = check_card(path, cards_dir=root, load=load, online=online)
        except InvarbenchError as exc:
            failures += 1
            outcomes[path] = str(exc)
            typer.echo(f"Error: {exc}", err=True)
            continue
        outcomes[path] = result
        typer.echo(f"ok  {path}  ({result.ref.card.id})")
        for note in result.notes:
            typer.echo(f"    note: {note}")
    append_summary(validation_markdown(outcomes, online=online, load=load))
    if failures:
        typer.echo(f"{failures} of {len(targets)} card(s) failed.", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"{len(targets)} card(s) valid.")


def _validate_changed(base: str, root: Path, *, load: bool, online: bool) -> None:
    from invarbench.card_checks import check_changed_cards

    with user_errors():
        report = check_changed_cards(base, root, load=load, online=online)
    changes = report.changes
    typer.echo(f"Cards changed since {base} (merge base {changes.merge_base[:12]}) in {root}:")
    for old, new in changes.renamed:
        typer.echo(f"renamed  {old} -> {new}")
    for path in changes.deleted:
        typer.echo(f"deleted  {path}  (not validated)")
    for path, outcome in report.checked.items():
        if isinstance(outcome, str):
            typer.echo(f"Error: {outcome}", err=True)
            continue
        typer.echo(f"ok  {path}  ({outcome.ref.card.id})")
        for note in outcome.notes:
            typer.echo(f"    note: {note}")
    for note in report.global_notes:
        typer.echo(f"note: {note}")
    for error in report.global_errors:
        typer.echo(f"Error: {error}", err=True)
    append_summary(changed_markdown(report, online=online, load=load))
    checked = len(report.checked)
    if report.failures:
        typer.echo(f"{report.failures} problem(s): {checked} changed card(s) checked.", err=True)
        raise typer.Exit(code=1)
    if not checked:
        typer.echo(f"No card added or modified since {base}; the rules over every card hold.")
        return
    typer.echo(f"{checked} changed card(s) valid; the rules over every card hold.")


def _what_checked(online: bool, load: bool) -> str:
    what = "schema, location, data set, architecture, model file checksum"
    if load:
        return what + ", and the model loaded and probed"
    if online:
        return what + " (Hub files checked on the Hub)"
    return what + " (Hub files only when in the local cache)"


def _outcome_rows(outcomes: dict[Path, object]) -> list[str]:
    rows = ["| card | file | result |", "| --- | --- | --- |"]
    for path, outcome in outcomes.items():
        if isinstance(outcome, str):
            rows.append(f"| – | {md(path.name)} | ❌ {md(outcome)} |")
        else:
            notes = "; ".join(md(n) for n in outcome.notes)
            rows.append(f"| {code(outcome.ref.card.id)} | {md(path.name)} | ✅ valid{': ' + notes if notes else ''} |")
    return rows


def validation_markdown(outcomes: dict[Path, object], *, online: bool, load: bool) -> str:
    """The job summary of 'cards validate [PATH…]'."""
    failed = sum(isinstance(v, str) for v in outcomes.values())
    head = "❌" if failed else "✅"
    lines = [
        f"### {head} Model cards: {len(outcomes) - failed} of {len(outcomes)} valid",
        "",
        f"Checked: {_what_checked(online, load)}.",
        "",
        *_outcome_rows(outcomes),
    ]
    return "\n".join(lines)


def changed_markdown(report, *, online: bool, load: bool) -> str:  # a ChangedCardsReport
    """The job summary of 'cards validate --changed BASE'."""
    changes = report.changes
    head = "❌" if report.failures else "✅"
    checked = len(report.checked)
    lines = [f"### {head} Model cards changed since {code(changes.base)}", ""]
    if checked:
        valid = checked - sum(isinstance(v, str) for v in report.checked.values())
        lines += [
            f"{valid} of {checked} added or modified card(s) valid. Checked: {_what_checked(online, load)}.",
            "",
            *_outcome_rows(report.checked),
            "",
        ]
    else:
        lines += ["No card added or modified.", ""]
    for old, new in changes.renamed:
        lines.append(f"- renamed: {md(old.name)} → {md(new.parent.name + '/' + new.name)}")
    for path in changes.deleted:
        lines.append(f"- deleted: {md(path.parent.name + '/' + path.name)} (not validated)")
    for error in report.global_errors:
        lines.append(f"- ❌ {md(error)}")
    for note in report.global_notes:
        lines.append(f"- note: {md(note)}")
    if not report.global_errors:
        lines.append("- ✅ every card id is unique and every card file sits where its id says")
    return "\n".join(lines)


@app.command("changed")
def changed_command(
    base: Annotated[str, typer.Argument(help="The git revision to compare with, e.g. origin/main.")],
    cards_dir: CardsDirOption = None,
) -> None:
    """Print the card files added, modified or renamed since the git revision BASE, one per line.

    The cards that 'cards validate --changed BASE' checks, for a script to loop over (the card workflow
    smoke-evaluates each). Nothing is printed when none changed.
    """
    from invarbench.cards.catalog import default_cards_dir
    from invarbench.cards.changes import changed_cards

    with user_errors():
        changes = changed_cards(base, cards_dir or default_cards_dir())
    for path in changes.to_validate:
        typer.echo(_display(path))


def _display(path: Path) -> str:
    """``path`` relative to the current folder when it lies inside it."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@app.command("status")
def status_command(
    suite: Annotated[
        str, typer.Option(help="The suite whose current version decides: 'standard', 'quick' or a suite file.")
    ] = "standard",
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            help="Read the runs from published results files (e.g. leaderboard/results) instead of --db.",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
    cards_dir: CardsDirOption = None,
) -> None:
    """Print each registered card's submission status with the current version of a suite.

    pending: no finished full run of the model file the card pins; evaluated: one exists (its run id);
    failed: the newest full attempt failed (its stored error is the reason). Derived from the cards and the
    runs, never kept by hand. Exit code 1 when a card does not load.
    """
    from invarbench.submissions import registered_cards, submission_statuses

    with user_errors():
        refs, broken = registered_cards(cards_dir)
        if results is not None and db is not None:
            raise ValidationError("give --results DIR or --db URL, not both")
        with _runs_store(db, results) as store:
            statuses = submission_statuses(store, refs, suite) if refs else []
    for line in broken:
        typer.echo(f"Error: {line}", err=True)
    if not statuses:
        typer.echo("No registered cards with a version of this suite.")
        raise typer.Exit(code=1 if broken else 0)
    table = Table(title=f"Submission status: {len(statuses)} card(s), suite {suite}")
    table.add_column("card", no_wrap=True, min_width=max(len(s.card_id) for s in statuses))
    table.add_column("suite")
    table.add_column("status")
    if results is None:  # run ids of a throwaway database would mean nothing
        table.add_column("run", justify="right")
    table.add_column("reason")
    for s in statuses:
        state = s.state + (" (running)" if s.running else "")
        run = [] if results is not None else ["" if s.run_id is None else str(s.run_id)]
        table.add_row(s.card_id, f"{s.suite} v{s.suite_version}", state, *run, s.reason or "")
    console.print(table)
    counts = {state: sum(s.state == state for s in statuses) for state in ("evaluated", "pending", "failed")}
    typer.echo(", ".join(f"{n} {state}" for state, n in counts.items()))
    append_summary(status_markdown(statuses, run_ids=results is None))
    if broken:
        raise typer.Exit(code=1)


def status_markdown(statuses, *, run_ids: bool = True) -> str:  # SubmissionStatus list
    """The job summary of 'cards status': one row per card."""
    icon = {"evaluated": "✅", "pending": "⏳", "failed": "❌"}
    head = ["card", "suite", "status", *(["run"] if run_ids else []), "reason"]
    lines = ["### Submission status", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for s in statuses:
        run = [("" if s.run_id is None else str(s.run_id))] if run_ids else []
        cells = [f"{code(s.card_id)}", f"{md(s.suite)} v{s.suite_version}", f"{icon[s.state]} {s.state}", *run]
        lines.append("| " + " | ".join([*cells, md(s.reason or "")]) + " |")
    return "\n".join(lines)


@contextmanager
def _runs_store(db: str | None, results: Path | None) -> Iterator:
    """The store to read runs from: ``db``, or the results files imported into a throwaway SQLite database."""
    from invarbench.store import Store

    if results is None:
        store = Store(db)
        try:
            yield store
        finally:
            store.close()
        return
    from invarbench.store.results_files import results_store

    if not results.exists():
        raise NotFoundError(f"results folder not found: {results}")
    with results_store(results) as store:
        yield store


def _floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise ValidationError(f"{what} must be numbers separated by commas, got '{text}'") from None


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise ValidationError(f"{what} must be integers separated by commas, got '{text}'") from None


def _file_help() -> str:
    from invarbench.cards.formats import FORMATS

    suffixes = ", ".join(f.suffix for f in FORMATS.in_order())
    return f"The model file ({suffixes}); its sha256 is computed."


def _format_help() -> str:
    from invarbench.cards.formats import FORMATS

    listed = "; ".join(f"{f.name} ({f.suffix}): {f.description}" for f in FORMATS.in_order())
    return f"The model format (default: from the file's suffix): {listed}."


def _architecture_help() -> str:
    from invarbench.cards.formats import FORMATS

    formats = " or ".join(f.name for f in FORMATS.in_order() if f.needs_architecture)
    return f"Registered architecture (format {formats} only)."


def _dataset_spec(name: str):  # a DatasetSpec or None
    from invarbench.data import DATASETS

    return DATASETS.get(name) if name in DATASETS else None


@app.command("new")
def new_command(
    id: Annotated[
        str | None, typer.Option("--id", help="'DATASET/NAME', e.g. cifar10/wrn28-trades.", show_default=False)
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name on the leaderboard.", show_default=False)] = None,
    num_classes: Annotated[int | None, typer.Option(help="Number of logits.", show_default=False)] = None,
    input_size: Annotated[
        str | None, typer.Option(help="C,H,W of the input images, e.g. 3,32,32.", show_default=False)
    ] = None,
    file: Annotated[
        Path | None,
        RegistryHelp(_file_help, "The model file; its sha256 is computed.", show_default=False),
    ] = None,
    sha256: Annotated[
        str | None, typer.Option(help="The file's sha256, when there is no local --file.", show_default=False)
    ] = None,
    format: Annotated[str | None, RegistryHelp(_format_help, "A registered model format.", show_default=False)] = None,
    hub_repo: Annotated[
        str | None, typer.Option(help="Hub repository 'org/name' holding the file.", show_default=False)
    ] = None,
    hub_revision: Annotated[str | None, typer.Option(help="The 40-hex Hub commit to pin.", show_default=False)] = None,
    hub_file: Annotated[
        str | None,
        typer.Option(help="The file's path in the Hub repository (default: --file's name).", show_default=False),
    ] = None,
    architecture: Annotated[
        str | None, RegistryHelp(_architecture_help, "Registered architecture.", show_default=False)
    ] = None,
    arch_kwargs: Annotated[
        str | None, typer.Option(help="Its kwargs as YAML/JSON, e.g. '{num_classes: 10}'.", show_default=False)
    ] = None,
    mean: Annotated[
        str | None, typer.Option(help="Per-channel mean, e.g. 0.4914,0.4822,0.4465.", show_default=False)
    ] = None,
    std: Annotated[str | None, typer.Option(help="Per-channel std.", show_default=False)] = None,
    training: Annotated[
        str | None, typer.Option(help=f"{', '.join(TRAINING_METHODS)} (see docs/model-cards.md).", show_default=False)
    ] = None,
    norm: Annotated[
        str | None, typer.Option(help="Training threat model norm: linf or l2.", show_default=False)
    ] = None,
    eps: Annotated[
        str | None, typer.Option(help="Training budget on the [0,1] scale, e.g. 8/255.", show_default=False)
    ] = None,
    paper_title: Annotated[str | None, typer.Option(help="Paper title.", show_default=False)] = None,
    paper_url: Annotated[str | None, typer.Option(help="Paper URL.", show_default=False)] = None,
    license: Annotated[
        str | None, typer.Option(help="License of the weights (SPDX id, e.g. MIT).", show_default=False)
    ] = None,
    submitted_by: Annotated[str | None, typer.Option(help="Your name or handle.", show_default=False)] = None,
    notes: Annotated[str | None, typer.Option(help="Free text: training details, caveats.", show_default=False)] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the card ('-' prints it). Default: CARDS_DIR/DATASET/NAME.yaml.", show_default=False
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing card file.")] = False,
    no_input: Annotated[
        bool, typer.Option("--no-input", help="Never prompt; fail on a missing required field.")
    ] = False,
    cards_dir: CardsDirOption = None,
) -> None:
    """Write a new model card from flags (prompting for missing required ones) and validate it."""
    from invarbench.cards.catalog import default_cards_dir
    from invarbench.cards.scaffold import CardFields, new_card

    def ask(value, label: str, flag: str, default=None, *, sure: bool = False):  # str | int
        """``value``, else a prompt; with --no-input the default only when it is ``sure`` (not a guess)."""
        if value is not None:
            return value
        if no_input:
            if sure and default is not None:
                return default
            raise ValidationError(f"{flag} is required (or run without --no-input to be asked)")
        return typer.prompt(label, default=default, type=type(default) if default is not None else str)

    with user_errors():
        card_id = ask(id, "Card id (<dataset>/<name>)", "--id")
        root = cards_dir or default_cards_dir()
        dataset, _, model_name = card_id.partition("/")
        default_path = root / dataset / f"{model_name}.yaml"
        target = default_path if out is None or str(out) == "-" else out
        # A registered data set fixes the class count and image size; otherwise they are guesses.
        spec = _dataset_spec(dataset)
        fields = CardFields(
            id=card_id,
            name=ask(name, "Display name", "--name", default=model_name or None, sure=True),
            num_classes=int(
                ask(
                    num_classes,
                    "Number of classes",
                    "--num-classes",
                    default=spec.num_classes if spec else 10,
                    sure=spec is not None,
                )
            ),
            input_size=_ints(
                ask(
                    input_size,
                    "Input size C,H,W",
                    "--input-size",
                    default=",".join(map(str, spec.input_shape)) if spec else "3,32,32",
                    sure=spec is not None,
                ),
                "--input-size",
            ),
            license=ask(license, "License (SPDX id)", "--license"),
            submitted_by=ask(submitted_by, "Submitted by", "--submitted-by"),
            training_method=ask(
                training,
                f"Training method ({', '.join(m for m in TRAINING_METHODS if m != 'adversarial')})",
                "--training",
                default="standard",
                sure=True,
            ),
            format=format,
            file=file,
            sha256=sha256,
            hub_repo=hub_repo,
            hub_revision=hub_revision,
            hub_file=hub_file,
            architecture=architecture,
            architecture_kwargs=(
                {} if arch_kwargs is None else yaml_mapping(arch_kwargs, "--arch-kwargs", "{num_classes: 10}")
            ),
            mean=_floats(mean, "--mean"),
            std=_floats(std, "--std"),
            norm=norm,
            eps=eps,
            paper_title=paper_title,
            paper_url=paper_url,
            notes=notes,
        )
        card, text = new_card(fields, target)
        # The checks of 'cards validate' that need no model file: a card they refuse is never written.
        from invarbench.card_checks import check_card_context
        from invarbench.cards.catalog import CardRef

        check_card_context(CardRef(card=card, path=target, sha256="", raw=text.encode()))
        if out is not None and str(out) == "-":
            typer.echo(text, nl=False)
            return
        if target.exists() and not force:
            raise ValidationError(f"{target} exists: pass --force to overwrite it")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    typer.echo(f"Wrote {target}")
    typer.echo(f"Next: invarbench cards validate {target} --load")


@app.command("architectures")
def architectures_command(
    namespace: Annotated[
        str | None,
        typer.Option(help="List 'torchvision' or 'timm' models instead of invarbench's own.", show_default=False),
    ] = None,
) -> None:
    """List the architectures a safetensors card can name."""
    from invarbench.models.architectures import architecture_table, timm_models, torchvision_models

    with user_errors():
        if namespace is None:
            rows = architecture_table(include_namespaces=False)
        elif namespace == "torchvision":
            rows = [(f"torchvision/{n}", torchvision_models.DESCRIPTION) for n in torchvision_models.names()]
        elif namespace == "timm":
            if not timm_models.available():
                raise ValidationError("timm is not installed: pip install 'invarbench[timm]'")
            rows = [(f"timm/{n}", "") for n in timm_models.names()]
        else:
            raise ValidationError(f"--namespace must be 'torchvision' or 'timm', got '{namespace}'")
    if namespace == "timm":
        typer.echo("\n".join(name for name, _ in rows))
        return
    table = Table(title=f"{len(rows)} architecture(s)")
    table.add_column("name")
    table.add_column("description")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if namespace is None:
        console.print(
            "Also: 'torchvision/<model>' (--namespace torchvision) and 'timm/<model>' (--namespace timm, "
            "needs pip install 'invarbench[timm]').",
            markup=False,
        )
