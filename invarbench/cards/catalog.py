"""Finding, reading and validating model cards (an I/O edge).

Cards are untrusted: they are read with a safe YAML loader that also refuses duplicate keys
(a reviewer reads the first, a plain loader keeps the last), Python-specific tags, anchors and
aliases (``&a`` / ``*a``: a 1 KB "billion laughs" card would expand to gigabytes) and nesting
deeper than :data:`MAX_CARD_DEPTH`, and are capped in size (:data:`MAX_CARD_BYTES`) before parsing.
"""

from __future__ import annotations

import hashlib
import os
import typing
from dataclasses import dataclass
from pathlib import Path

import pydantic
import yaml

from invarbench.cards.schema import FieldError, ModelCard
from invarbench.errors import NotFoundError, ValidationError
from invarbench.registry import did_you_mean

CARDS_ENV = "INVARBENCH_CARDS"
MAX_CARD_BYTES = 64 * 1024
MAX_CARD_DEPTH = 32  # nested mappings and lists; a card needs about 4
CARD_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class CardRef:
    """A validated card and where it came from."""

    card: ModelCard
    path: Path
    sha256: str  # of the card file's bytes: the snapshot stored with every run
    raw: bytes = b""  # the card file's bytes as read (and hashed): what a run stores, never read again

    @property
    def folder(self) -> Path:
        return self.path.parent


def default_cards_dir() -> Path:
    """``$INVARBENCH_CARDS``, else ``model_cards/`` of this checkout, else ``./model_cards``."""
    env = os.environ.get(CARDS_ENV)
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "model_cards"
    if checkout.is_dir():
        return checkout
    return Path.cwd() / "model_cards"


class _CardLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys, anchors, aliases and deep nesting."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None,
                None,
                "YAML anchors and aliases (&name, *name) are not allowed in model cards: write each value out",
                event.start_mark,
            )
        if self._depth >= MAX_CARD_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested more than {MAX_CARD_DEPTH} levels deep: a card is a few levels", event.start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _mapping_without_duplicates(loader: _CardLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[object, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key; construct_mapping reports it
            break
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key '{key}' appears twice (keep one)", key_node.start_mark
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_CardLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def parse_card_yaml(raw: bytes | str, path: Path | str) -> object:
    """Parse a card's text with the guarded loader (see the module docstring): plain values only.

    ``path`` names where the text came from in the error (a card file, or e.g. a results file's
    ``card_yaml``). Raises :class:`ValidationError`, one line naming ``path``, for invalid YAML, a
    tag, a duplicate key, an anchor or alias, deep nesting or more than :data:`MAX_CARD_BYTES` bytes.
    """
    size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
    if size > MAX_CARD_BYTES:
        raise ValidationError(f"model card {path} is {size:,} bytes; a card is at most {MAX_CARD_BYTES:,} bytes")
    try:
        return yaml.load(raw, Loader=_CardLoader)  # _CardLoader is a SafeLoader
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "constructor for the tag" in problem:
            tag = problem.split("tag", 1)[1].strip(" '").replace("tag:yaml.org,2002:", "!!")  # as written
            problem = (
                f"the tag '{tag}' is not allowed: model cards hold plain values only (no !!python/... or other tags)"
            )
        raise ValidationError(f"invalid YAML in model card {path}{where}: {problem}") from None


def _model_at(loc: tuple) -> type[pydantic.BaseModel] | None:
    """The schema model that owns the field at ``loc`` (for "did you mean" on unknown fields)."""
    model: type[pydantic.BaseModel] = ModelCard
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, pydantic.BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def _field_names(model: type[pydantic.BaseModel]) -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        names.append(name)
        alias = field.validation_alias
        if isinstance(alias, pydantic.AliasChoices):
            names.extend(str(c) for c in alias.choices if isinstance(c, str))
    return names


def format_validation_error(path: Path, exc: pydantic.ValidationError) -> str:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            loc = (*loc, *cause.field.split("."))  # a cross-field check names the field to change
        field = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            owner = _model_at(loc[:-1])
            hint = did_you_mean(str(loc[-1]), _field_names(owner)) if owner is not None else ""
            msg = f"unknown field.{hint or ' Remove it or check its spelling.'} (see docs/model-cards.md)"
        elif err["type"] == "missing":
            msg = "required field is missing (see docs/model-cards.md)"
        problems.append(f"{field}: {msg}")
    return f"invalid model card {path}: " + "; ".join(problems)


def card_from_data(data: object, path: Path) -> ModelCard:
    """Validate parsed YAML as a card (errors name ``path``)."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else type(data).__name__
        raise ValidationError(f"invalid model card {path}: expected a mapping of fields, got {got}")
    try:
        return ModelCard.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(format_validation_error(path, exc)) from None


def check_card_location(card: ModelCard, path: Path, cards_dir: Path | None = None) -> None:
    """The card must be ``<dataset>/<name>.yaml``, under ``cards_dir`` when one is given."""
    expected_rel = Path(card.dataset) / f"{card.model_name}.yaml"
    if cards_dir is not None:
        expected = cards_dir.resolve() / expected_rel
        if path.resolve() != expected:
            raise ValidationError(f"model card {path} has id '{card.id}', so it must live at {expected}")
    elif (path.parent.name, path.name) != (card.dataset, f"{card.model_name}.yaml"):
        raise ValidationError(
            f"model card {path} has id '{card.id}', so it must be named {expected_rel} "
            "(model_cards/<dataset>/<name>.yaml)"
        )


def load_card(path: Path | str, *, check_location: bool = False, cards_dir: Path | None = None) -> CardRef:
    """Read and validate one card file.

    With ``check_location`` the card must live at ``<cards_dir>/<dataset>/<name>.yaml``
    (``cards_dir`` defaults to :func:`default_cards_dir`).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"model card file not found: {path}")
    size = path.stat().st_size
    if size > MAX_CARD_BYTES:
        raise ValidationError(f"model card {path} is {size:,} bytes; a card is at most {MAX_CARD_BYTES:,} bytes")
    with open(path, "rb") as fh:
        raw = fh.read(MAX_CARD_BYTES + 1)  # a file that grew since stat() is still capped
    card = card_from_data(parse_card_yaml(raw, path), path)
    if check_location:
        check_card_location(card, path, cards_dir or default_cards_dir())
    return CardRef(card=card, path=path, sha256=hashlib.sha256(raw).hexdigest(), raw=raw)


def card_paths(cards_dir: Path | None = None) -> list[Path]:
    """Every ``<dataset>/<name>.yaml`` under ``cards_dir``, sorted."""
    root = cards_dir or default_cards_dir()
    if not root.is_dir():
        return []
    return sorted(p for suffix in CARD_SUFFIXES for p in root.glob(f"*/*{suffix}") if p.is_file())


def _card_ids(root: Path) -> list[str]:
    return sorted(f"{p.parent.name}/{p.stem}" for p in card_paths(root))


def resolve_card(model: str, cards_dir: Path | None = None) -> CardRef:
    """Resolve ``model``: a card id such as ``mnist5k/lenet-standard`` or a path to a YAML file."""
    root = cards_dir or default_cards_dir()
    if model.endswith(CARD_SUFFIXES) or Path(model).is_file():
        return load_card(model)
    parts = model.split("/")
    if len(parts) == 2 and all(parts) and ".." not in parts and not model.startswith(".") and "\\" not in model:
        candidate = root / parts[0] / f"{parts[1]}.yaml"
        if candidate.is_file():
            return load_card(candidate, check_location=True, cards_dir=root)
    known = _card_ids(root)
    hint = did_you_mean(model, known)
    if not hint:
        hint = (
            " Run 'invarbench cards list' to see registered models."
            if known
            else (f" No model cards found in {root} (set {CARDS_ENV} or --cards-dir).")
        )
    raise NotFoundError(f"unknown model '{model}'.{hint}")
