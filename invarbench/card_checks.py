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
from invarbench.cards.changes import CardChanges, changed_cards
from invarbench.cards.checksum import verify_sha256
from invarbench.errors import InvarbenchError, NotFoundError, ValidationError
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


def check_card(path: Path, *, cards_dir: Path | None = None, load: bool = False, online: bool = False) -> CardCheck:
    """Every check on the card at ``path``; raises the first problem as an :class:`InvarbenchError`.

    ``online``: a Hub file is checked on the Hub (:func:`invarbench.models.hub.check_hub_file`:
    repository, revision, file, size and sha256) instead of only when it is in the local cache.
    ``load``: the model is also downloaded, loaded and probed."""
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
    elif online and ref.card.source.hub is not None:
        from invarbench.models.hub import check_hub_file

        result.notes.append(check_hub_file(ref.card.source.hub, where=f"model card {ref.path}"))
    else:
        note = check_model_file(ref)
        if note:
            result.notes.append(note)
    return result


@dataclass
class ChangedCardsReport:
    """What ``cards validate --changed BASE`` found: the changes, each checked card's outcome (path ->
    its :class:`CardCheck` or the error line), and the problems of the global rules."""

    changes: CardChanges
    checked: dict[Path, CardCheck | str] = field(default_factory=dict)
    global_errors: list[str] = field(default_factory=list)
    global_notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return sum(isinstance(v, str) for v in self.checked.values()) + len(self.global_errors)


def check_global_rules(cards_dir: Path, skip: set[Path] = frozenset()) -> tuple[list[str], list[str]]:
    """The rules over the whole cards folder: every card sits at ``<dataset>/<name>.yaml`` for its id, and
    no two cards share an id. Returns (errors, notes); a card that does not load is a note (its own
    validation reports it), and cards in ``skip`` (already checked one by one) are not reported twice."""
    from invarbench.cards.catalog import card_paths

    errors: list[str] = []
    notes: list[str] = []
    owners: dict[str, list[Path]] = {}
    for path in card_paths(cards_dir):
        resolved = path.resolve()
        try:
            ref = load_card(path)
        except InvarbenchError as exc:
            if resolved not in skip:
                notes.append(f"unchanged card {path} does not load, not validated here ({exc})")
            continue
        owners.setdefault(ref.card.id, []).append(path)
        if resolved in skip:
            continue
        try:
            check_card_location(ref.card, path, cards_dir)
        except ValidationError as exc:
            errors.append(str(exc))
    for card_id, paths in sorted(owners.items()):
        if len(paths) > 1:
            errors.append(
                f"model card id '{card_id}' is used by {len(paths)} files ({', '.join(map(str, paths))}): "
                "ids must be unique, rename all but one"
            )
    return errors, notes


def check_changed_cards(base: str, cards_dir: Path, *, load: bool = False, online: bool = False) -> ChangedCardsReport:
    """Check the cards added, modified or renamed since the git revision ``base`` (see
    :func:`invarbench.cards.changes.changed_cards`; a card whose local model file changed counts as
    modified), then the global rules (:func:`check_global_rules`). Deleted cards are listed, not checked.
    Raises :class:`ValidationError` only for a problem with ``base`` or the checkout."""
    changes = changed_cards(base, cards_dir)
    targets = changes.to_validate
    if changes.other_files:  # a card whose own model file changed is checked again
        changed_files = {p.resolve() for p in changes.other_files}
        from invarbench.cards.catalog import card_paths

        for path in card_paths(cards_dir):
            try:
                source = load_card(path).card.source
            except InvarbenchError:
                continue
            resolved = path.resolve()
            if source.path and (path.parent / source.path).resolve() in changed_files and resolved not in targets:
                changes.modified.append(resolved)
        changes.modified.sort()
        targets = changes.to_validate
    report = ChangedCardsReport(changes)
    for path in targets:
        try:
            report.checked[path] = check_card(path, cards_dir=cards_dir, load=load, online=online)
        except InvarbenchError as exc:
            report.checked[path] = str(exc)
    report.global_errors, report.global_notes = check_global_rules(cards_dir, {p.resolve() for p in targets})
    return report
