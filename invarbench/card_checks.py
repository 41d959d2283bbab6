"""What ``invarbench cards validate`` checks beyond the schema, and ``eval`` before it loads a model.

The schema and the catalog (:mod:`invarbench.cards`) check a card on its own. These checks put
it in context: where it lives, the data set it names (:mod:`invarbench.data`), the architecture
registry and the model file (:mod:`invarbench.models`: its checksum, when the file is at hand;
the full load with ``load=True``). They sit above cards, data and models, which never import them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from invarbench.cards.catalog import CardRef, check_card_location, load_card
from invarbench.cards.checksum import verify_sha256
from invarbench.errors import NotFoundError, ValidationError
from invarbench.registry import did_you_mean


@dataclass
class CardCheck:
    """A card that passed every check, and notes on what was not checked."""

    ref: CardRef
    notes: list[str] = field(default_factory=list)


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def check_dataset(ref: CardRef) -> None:
    """The card's data set is registered and agrees on classes and image size."""
    from invarbench.data import DATASETS

    card = ref.card
    if card.dataset not in DATASETS:
        raise NotFoundError(
            f"model card {ref.path}: unknown data set '{card.dataset}'.{did_you_mean(card.dataset, DATASETS.names())} "
            f"Known: {', '.join(DATASETS.names())}."
        )
    spec = DATASETS.get(card.dataset)
    if card.num_classes != spec.num_classes:
        raise ValidationError(
            f"model card {ref.path}: num_classes is {card.num_classes}, but data set '{card.dataset}' has "
            f"{spec.num_classes} classes"
        )
    if tuple(card.preprocessing.input_size) != tuple(spec.input_shape):
        raise ValidationError(
            f"model card {ref.path}: preprocessing.input_size is {card.preprocessing.input_size}, but data set "
            f"'{card.dataset}' has images of size {list(spec.input_shape)}"
        )


def check_card_context(ref: CardRef) -> None:
    """The checks every use of a card runs before its model is loaded (``cards validate``, ``eval``):
    the data set is registered and agrees on classes and image size, and the architecture exists
    and takes the card's kwargs. Raises :class:`NotFoundError` or :class:`ValidationError` naming
    the card and the field to fix."""
    from invarbench.models.architectures import check_architecture_kwargs

    check_dataset(ref)
    arch = ref.card.architecture
    if arch is not None:
        try:
            check_architecture_kwargs(arch.name, arch.kwargs)
        except (NotFoundError, ValidationError) as exc:
            raise type(exc)(f"model card {ref.path}: {exc}") from None


def check_model_file(ref: CardRef) -> str | None:
    """Verify the model file's checksum when it is on disk; return a note when it is not."""
    from invarbench.models.hub import cached_file
    from invarbench.models.loading import model_file

    hub = ref.card.source.hub
    if hub is None:
        model_file(ref)  # exists, stays in the folder, size cap, checksum
        return None
    cached = cached_file(hub)
    if cached.is_file():
        verify_sha256(cached, hub.sha256, f"model card {ref.path}")
        return None
    return (
        f"{hub.file} of {hub.repo_id}@{hub.revision[:12]} is not in the local Hub cache: not checksummed (use --load)"
    )


def check_card(path: Path, *, cards_dir: Path | None = None, load: bool = False) -> CardCheck:
    """Every check on the card at ``path``; raises the first problem as an :class:`InvarbenchError`."""
    ref = load_card(path)
    if cards_dir is not None and _inside(path, cards_dir):
        check_card_location(ref.card, path, cards_dir)
    else:
        check_card_location(ref.card, path)
    check_card_context(ref)
    result = CardCheck(ref)
    if load:
        from invarbench.models.loading import load_model

        load_model(ref, "cpu")
    else:
        note = check_model_file(ref)
        if note:
            result.notes.append(note)
    return result
