"""Finding, reading and validating model cards (an I/O edge)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pydantic
import yaml

from invarbench.cards.schema import ModelCard
from invarbench.errors import NotFoundError, ValidationError
from invarbench.registry import did_you_mean

CARDS_ENV = "INVARBENCH_CARDS"


@dataclass(frozen=True)
class CardRef:
    """A validated card and where it came from."""

    card: ModelCard
    path: Path
    sha256: str  # of the card file's bytes: the snapshot stored with every run

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


def _format_pydantic_error(path: Path, exc: pydantic.ValidationError) -> str:
    problems = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field: remove it or check its spelling (see docs/model-cards.md)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        problems.append(f"{field}: {msg}")
    return f"invalid model card {path}: " + "; ".join(problems)


def load_card(path: Path | str, *, check_location: bool = False, cards_dir: Path | None = None) -> CardRef:
    """Read and validate one card file.

    With ``check_location`` the card must live at ``<cards_dir>/<dataset>/<name>.yaml``.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"model card file not found: {path}")
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValidationError(f"invalid YAML in model card {path}{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ValidationError(f"invalid model card {path}: expected a mapping of fields, got {type(data).__name__}")
    try:
        card = ModelCard.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(_format_pydantic_error(path, exc)) from None
    if check_location:
        root = (cards_dir or default_cards_dir()).resolve()
        expected = root / card.dataset / f"{card.model_name}.yaml"
        if path.resolve() != expected:
            raise ValidationError(
                f"model card {path} has id '{card.id}', so it must live at {expected}"
            )
    return CardRef(card=card, path=path, sha256=hashlib.sha256(raw).hexdigest())


def list_cards(cards_dir: Path | None = None) -> list[CardRef]:
    """All valid cards under ``cards_dir`` sorted by id (invalid ones raise)."""
    root = cards_dir or default_cards_dir()
    if not root.is_dir():
        return []
    refs = [load_card(p) for p in sorted(root.glob("*/*.yaml"))]
    return sorted(refs, key=lambda r: r.card.id)


def _card_ids(root: Path) -> list[str]:
    return sorted(f"{p.parent.name}/{p.stem}" for p in root.glob("*/*.yaml"))


def resolve_card(model: str, cards_dir: Path | None = None) -> CardRef:
    """Resolve ``model``: a card id such as ``mnist5k/lenet-standard`` or a path to a YAML file."""
    root = cards_dir or default_cards_dir()
    if model.endswith((".yaml", ".yml")) or os.sep in model and Path(model).exists():
        return load_card(model)
    parts = model.split("/")
    if len(parts) == 2 and all(parts) and ".." not in parts and not model.startswith("."):
        candidate = root / parts[0] / f"{parts[1]}.yaml"
        if candidate.is_file():
            return load_card(candidate, check_location=True, cards_dir=root)
    known = _card_ids(root)
    hint = did_you_mean(model, known)
    if not hint:
        hint = " Run 'invarbench cards list' to see registered models." if known else (
            f" No model cards found in {root} (set {CARDS_ENV} or --cards-dir)."
        )
    raise NotFoundError(f"unknown model '{model}'.{hint}")
