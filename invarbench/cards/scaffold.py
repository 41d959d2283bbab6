"""Writing a new card (``invarbench cards new``): fields in, validated YAML out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from invarbench.cards.catalog import card_from_data
from invarbench.cards.checksum import model_sha256
from invarbench.cards.formats import FORMATS, format_for_file
from invarbench.cards.schema import CARD_SCHEMA_VERSION, ModelCard
from invarbench.errors import ValidationError


@dataclass
class CardFields:
    """Everything ``cards new`` asks for; ``None`` leaves an optional field out."""

    id: str
    name: str
    num_classes: int
    input_size: list[int]
    license: str
    submitted_by: str
    training_method: str = "standard"
    format: str | None = None  # default: from the file's suffix
    file: Path | None = None  # a local copy of the model file: its sha256 is computed
    sha256: str | None = None  # when there is no local copy
    hub_repo: str | None = None
    hub_revision: str | None = None
    hub_file: str | None = None  # default: the local file's name
    architecture: str | None = None
    architecture_kwargs: dict[str, object] = field(default_factory=dict)
    mean: list[float] | None = None
    std: list[float] | None = None
    norm: str | None = None
    eps: str | float | None = None
    paper_title: str | None = None
    paper_url: str | None = None
    notes: str | None = None


def _format_for(name: str) -> str:
    """The registered format whose suffix ``name`` has; :class:`ValidationError` when none has it."""
    fmt = format_for_file(name)
    if fmt is not None:
        return fmt.name
    suffixes = " or ".join(f.suffix for f in FORMATS.in_order())
    raise ValidationError(
        f"cannot tell the format of '{name}': give --format, and use a {suffixes} file "
        "(pickled checkpoints are never loaded; 'invarbench pack' makes a .pt2)"
    )


def card_data(f: CardFields, card_path: Path) -> dict[str, object]:
    """The card as a mapping in the documented field order (validated by the caller)."""
    if "/" not in f.id:
        raise ValidationError(f"--id must be '<dataset>/<name>', got '{f.id}'")
    dataset = f.id.split("/", 1)[0]
    sha = f.sha256
    if f.file is not None:
        if not f.file.is_file():
            raise ValidationError(f"model file not found: {f.file}")
        sha = model_sha256(f.file, "--file")
    if f.hub_repo is not None:
        file_name = f.hub_file or (f.file.name if f.file is not None else None)
        if not (f.hub_revision and file_name and sha):
            raise ValidationError(
                "a Hub source needs --hub-revision (the 40-hex commit), --hub-file (or --file) and the file "
                "itself (--file) or its --sha256"
            )
        source: dict[str, object] = {
            "hub": {"repo_id": f.hub_repo, "revision": f.hub_revision, "file": file_name, "sha256": sha}
        }
    else:
        if f.file is None:
            raise ValidationError("give the model file with --file (a local file next to the card, or with --hub-repo)")
        folder = card_path.parent.resolve()
        if not f.file.resolve().is_relative_to(folder):
            raise ValidationError(
                f"a local model file must sit in the card's folder {folder}: copy {f.file} there, "
                "or publish it on the Hub and give --hub-repo/--hub-revision"
            )
        file_name = f.file.resolve().relative_to(folder).as_posix()
        source = {"path": file_name, "sha256": sha}
    fmt = f.format or _format_for(str(file_name))
    data: dict[str, object] = {
        "schema_version": CARD_SCHEMA_VERSION,
        "id": f.id,
        "name": f.name,
        "dataset": dataset,
        "num_classes": f.num_classes,
        "source": source,
        "format": fmt,
    }
    if f.architecture is not None:
        data["architecture"] = {"name": f.architecture, "kwargs": dict(f.architecture_kwargs)}
    pre: dict[str, object] = {}
    if f.mean is not None:
        pre["mean"] = list(f.mean)
    if f.std is not None:
        pre["std"] = list(f.std)
    pre["input_size"] = list(f.input_size)
    data["preprocessing"] = pre
    training: dict[str, object] = {"method": f.training_method}
    if f.norm is not None:
        training["norm"] = f.norm
    if f.eps is not None:
        training["eps"] = f.eps
    data["training"] = training
    if f.paper_title is not None:
        data["paper"] = {"title": f.paper_title, **({"url": f.paper_url} if f.paper_url else {})}
    data["license"] = f.license
    data["submitted_by"] = f.submitted_by
    if f.notes:
        data["notes"] = f.notes
    return data


def render_card(data: dict[str, object]) -> str:
    header = "# A model card for invarbench: see docs/model-cards.md for every field.\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)


def new_card(f: CardFields, card_path: Path) -> tuple[ModelCard, str]:
    """Build, validate and render a card for ``card_path`` (nothing is written here)."""
    data = card_data(f, card_path)
    text = render_card(data)
    card = card_from_data(yaml.safe_load(text), card_path)
    return card, text
