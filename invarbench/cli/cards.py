"""``invarbench cards``: list, show, validate and scaffold model cards; list architectures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from invarbench.cli.common import CardsDirOption, console, user_errors, yaml_mapping
from invarbench.errors import InvarbenchError, ValidationError

app = typer.Typer(
    help="Model cards: list, show, validate and create them.", no_args_is_help=True, rich_markup_mode="markdown"
)


def _source(card) -> str:  # noqa: ANN001 - a ModelCard
    hub = card.source.hub
    return f"hub:{hub.repo_id}@{hub.revision[:8]}" if hub else f"file:{card.source.path}"


def _threat(card) -> str:  # noqa: ANN001 - a ModelCard
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
    data = ref.card.model_dump(mode="json", exclude_none=True)
    typer.echo(f"# {ref.path}  (card sha256 {ref.sha256})")
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100), nl=False)


@app.command("validate")
def validate_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Card files to check. Default: every card under the cards folder.", show_default=False),
    ] = None,
    load: Annotated[
        bool, typer.Option("--load", help="Also download (if needed) and load each model, and check its logits.")
    ] = False,
    cards_dir: CardsDirOption = None,
) -> None:
    """Check cards: schema, location, data set, architecture and the model file's checksum.

    Exit code 1 when any card fails; each failure is one 'Error: ...' line on stderr.
    """
    from invarbench.card_checks import check_card
    from invarbench.cards.catalog import card_paths, default_cards_dir

    root = cards_dir or default_cards_dir()
    targets = list(paths) if paths else card_paths(root)
    if not targets:
        typer.echo(f"Error: no model cards to validate in {root}", err=True)
        raise typer.Exit(code=1)
    failures = 0
    for path in targets:
        try:
            result = check_card(path, cards_dir=root, load=load)
        except InvarbenchError as exc:
            failures += 1
            typer.echo(f"Error: {exc}", err=True)
            continue
        typer.echo(f"ok  {path}  ({result.ref.card.id})")
        for note in result.notes:
            typer.echo(f"    note: {note}")
    if failures:
        typer.echo(f"{failures} of {len(targets)} card(s) failed.", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"{len(targets)} card(s) valid.")


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


def _dataset_spec(name: str):  # noqa: ANN202 - a DatasetSpec or None
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
        typer.Option(help="The model file (.safetensors or .pt2); its sha256 is computed.", show_default=False),
    ] = None,
    sha256: Annotated[
        str | None, typer.Option(help="The file's sha256, when there is no local --file.", show_default=False)
    ] = None,
    format: Annotated[
        str | None, typer.Option(help="safetensors or torch-export (default: from the suffix).", show_default=False)
    ] = None,
    hub_repo: Annotated[
        str | None, typer.Option(help="Hub repository 'org/name' holding the file.", show_default=False)
    ] = None,
    hub_revision: Annotated[str | None, typer.Option(help="The 40-hex Hub commit to pin.", show_default=False)] = None,
    hub_file: Annotated[
        str | None,
        typer.Option(help="The file's path in the Hub repository (default: --file's name).", show_default=False),
    ] = None,
    architecture: Annotated[
        str | None, typer.Option(help="Registered architecture (safetensors only).", show_default=False)
    ] = None,
    arch_kwargs: Annotated[
        str | None, typer.Option(help="Its kwargs as YAML/JSON, e.g. '{num_classes: 10}'.", show_default=False)
    ] = None,
    mean: Annotated[
        str | None, typer.Option(help="Per-channel mean, e.g. 0.4914,0.4822,0.4465.", show_default=False)
    ] = None,
    std: Annotated[str | None, typer.Option(help="Per-channel std.", show_default=False)] = None,
    training: Annotated[
        str | None, typer.Option(help="standard, pgd-at, trades, ccat or other.", show_default=False)
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

    def ask(value, label: str, flag: str, default=None, *, sure: bool = False):  # noqa: ANN001,ANN202 - str | int
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
                "Training method (standard, pgd-at, trades, ccat, other)",
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
