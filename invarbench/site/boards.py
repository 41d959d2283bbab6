"""What a board shows besides its numbers (docs/site.md, "The index"): the architecture family a row is
filtered by, the flags' short badges and their legend, the caveats a flag puts on the numbers it
concerns, the board's correlations and the sentences that say what they are.

Pure functions over names and values: :mod:`invarbench.site.build` calls them while it builds a board.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from invarbench.site.correlations import HUMAN, BoardCorrelation

# Architecture families, by the registered architecture's name (the part after a namespace such as
# ``torchvision/``): the first pattern that matches names the family.
_FAMILIES: tuple[tuple[str, str], ...] = (
    (r"wide_?resnet|wrn", "Wide ResNet"),
    (r"resnet|resnext", "ResNet"),
    (r"mlp", "MLP"),
    (r"vit|deit|swin", "Vision transformer"),
    (r"vgg", "VGG"),
    (r"densenet", "DenseNet"),
    (r"mobilenet|efficientnet|convnext|regnet", "Mobile/efficient CNN"),
)
NO_ARCHITECTURE = "not stated"  # a card without an architecture (a torch-export file carries its own graph)


@dataclass(frozen=True)
class TrainingChoice:
    """An option of a board's training filter: its ``value`` (the ``training=`` of the board's URL state), the
    ``label`` the menu shows, the card methods it selects (``methods``) and a ``help`` sentence ("" for none)."""

    value: str
    label: str
    methods: tuple[str, ...]
    help: str = ""


# The options that group the card schema's adversarial methods. Certified training is among them: it trains
# against a threat model too (a bound of the worst-case loss within the card's ε ball instead of an attack's
# examples), and the card schema asks it for that threat model like the others; the second group leaves it out.
# Their values are no card method's (the schema has one called 'adversarial'), so that a board's URL names
# exactly one option.
ADVERSARIAL_CHOICE = "any-adversarial"
UNCERTIFIED_CHOICE = "adversarial-not-certified"
# What the filter's "all" option selects, shown under the menu like every option's meaning.
ALL_TRAINING_HELP = "all: every model of the board, whatever its training"


def training_choices(methods: set[str] | list[str]) -> list[TrainingChoice]:
    """A board's training filter from the training methods of its rows: first, where any row is adversarially
    trained, one option grouping every method of :data:`invarbench.cards.schema.ADVERSARIAL_METHODS` (value
    :data:`ADVERSARIAL_CHOICE`, labelled "adversarially trained (any, incl. certified)"), then, where any row
    is adversarially trained by a method other than certified training, the same group without it (value
    :data:`UNCERTIFIED_CHOICE`, "adversarially trained, not certified"), then each method of the board on its
    own, sorted. Every option's ``help`` says what it selects, a single method's in the words of
    :data:`invarbench.cards.schema.TRAINING_METHODS`. Raises ValueError where a group's value is a card method."""
    from invarbench.cards.schema import ADVERSARIAL_METHODS, TRAINING_METHODS

    for value in (ADVERSARIAL_CHOICE, UNCERTIFIED_CHOICE):
        if value in TRAINING_METHODS:  # a method added to the schema under a group's value
            raise ValueError(f"the training filter's group value '{value}' is a card method: rename it")
    present = sorted(set(methods))
    choices = [
        TrainingChoice(
            m, m, (m,), f"{m}: {TRAINING_METHODS.get(m, 'a training method this version does not describe')}"
        )
        for m in present
    ]
    uncertified = tuple(m for m in ADVERSARIAL_METHODS if m != "certified")
    if "certified" in ADVERSARIAL_METHODS and any(m in uncertified for m in present):
        label = "adversarially trained, not certified"
        help_text = (
            f"{label}: the models trained on an attack's examples ({', '.join(uncertified)}); "
            "certified training is left out."
        )
        choices.insert(0, TrainingChoice(UNCERTIFIED_CHOICE, label, uncertified, help_text))
    if any(m in ADVERSARIAL_METHODS for m in present):
        label = "adversarially trained (any" + (", incl. certified)" if "certified" in ADVERSARIAL_METHODS else ")")
        help_text = (
            f"{label}: the models trained against a threat model ({', '.join(ADVERSARIAL_METHODS)}); certified "
            "training bounds the worst-case loss in the ε ball instead of attacking it, and counts."
        )
        choices.insert(0, TrainingChoice(ADVERSARIAL_CHOICE, label, tuple(ADVERSARIAL_METHODS), help_text))
    return choices


def median_distance_is_zero(row) -> bool:  # build.Row
    """Whether ``row``'s median minimal L2 distance is 0 because fewer than half of its images are classified
    correctly: a misclassified image counts as distance 0 (docs/measurements.md §1.2), so with a clean
    accuracy (``row.metrics["clean_accuracy"].value``, a share in [0, 1]) below 0.5 the median is 0 whatever
    the attacks found. False where the row has no clean accuracy or no median distance."""
    clean, distance = row.metrics.get("clean_accuracy"), row.metrics.get("median_min_l2_distance")
    return clean is not None and distance is not None and clean.value < 0.5


def architecture_family(name: str | None) -> str:
    """The family a board filters by, from a card's architecture name (``resnet56`` → ``ResNet``,
    ``wide_resnet28_10`` → ``Wide ResNet``, ``eran_mlp`` → ``MLP``; any other registered name of this
    package, all of them convolutional networks, → ``CNN``). None (no architecture on the card):
    :data:`NO_ARCHITECTURE`."""
    if not name:
        return NO_ARCHITECTURE
    base = name.rsplit("/", 1)[-1].lower()
    for pattern, family in _FAMILIES:
        if re.search(pattern, base):
            return family
    if "/" in name:  # a library's model this table does not know: its own name, without the variant
        return re.sub(r"[_\-]?\d.*$", "", base) or base
    return "CNN"


@dataclass(frozen=True)
class PendingModel:
    """A registered card a board has not evaluated yet (a pending submission), with what the board's filters
    and search match it by: its ``training`` method, architecture ``family`` (:func:`architecture_family`)
    and ``architecture`` name (None without one); ``running``: a full run of it is under way."""

    card_id: str
    name: str
    training: str
    family: str
    architecture: str | None
    running: bool = False

    @property
    def search(self) -> str:
        """The words the board's search box matches it by (as a ranked row's ``data-search``)."""
        return " ".join(x for x in (self.name, self.card_id, self.training, self.family, self.architecture) if x)


def pending_models(pending: list, cards: list) -> list[PendingModel]:  # SubmissionStatus, CardRef
    """The ``pending`` submissions (:class:`invarbench.submissions.SubmissionStatus`, in their order) with the
    training and architecture of their card among ``cards`` (:class:`invarbench.cards.catalog.CardRef`); a
    status whose card is not among them is left out."""
    by_id = {ref.card.id: ref.card for ref in cards}
    out = []
    for st in pending:
        card = by_id.get(st.card_id)
        if card is None:
            continue
        arch = card.architecture.name if card.architecture is not None else None
        out.append(PendingModel(st.card_id, st.name, card.training.method, architecture_family(arch), arch, st.running))
    return out


def architecture_group(name: str | None, kwargs: Mapping[str, object] | None) -> str | None:
    """The correlations' architecture group: the name with its keyword arguments (``eran_mlp(layers=6,
    width=100)``), so that a group's models differ in training only; None without an architecture."""
    if not name:
        return None
    args = ", ".join(f"{k}={v}" for k, v in sorted((kwargs or {}).items()))
    return f"{name}({args})" if args else name


@dataclass(frozen=True)
class FlagInfo:
    """A flag as a board shows it: the ``flag`` itself, its short ``label`` (the badge), what it means
    (``explanation``, from the registry's flag docs), the metrics whose numbers it concerns (None:
    every number) and the ``caveat`` shown beside those numbers."""

    flag: str
    label: str
    explanation: str
    concerns: tuple[str, ...] | None
    caveat: str


_ROBUST = ("robust_accuracy_linf", "robust_accuracy_l2")
# Every number a gradient computed: the attacks' and the walks' (docs/measurements.md §4).
_GRADIENT = (*_ROBUST, "median_min_l2_distance", "nspgd_closure", "nspgd_target_distance_l2", "path_width")

# flag -> (badge, the metrics it concerns (None: every number), the caveat beside them)
_FLAG_BADGES: dict[str, tuple[str, tuple[str, ...] | None, str]] = {
    "gradient_attack_weaker_than_search": (
        "masking?",
        _ROBUST,
        "likely too optimistic: the gradient attacks were weaker than a gradient-free search",
    ),
    "zero_gradients": ("zero grad", _GRADIENT, "may be wrong: the input gradient is zero for many images"),
    "nan_gradients": ("NaN grad", _GRADIENT, "may be wrong: the input gradient has NaN or Inf entries"),
    "probability_outputs": ("probs", _GRADIENT, "may be wrong: the model returns probabilities, not logits"),
    "randomized_outputs": ("random", _GRADIENT, "may be wrong: a randomised model needs attacks with EOT"),
    "batch_dependent_outputs": ("batch", None, "changes with the batch size the run used"),
}


def flag_info(flag: str, docs: Mapping[str, str]) -> FlagInfo:
    """How a board shows ``flag`` (``docs``: :func:`invarbench.measurements.flag_docs`). A flag this
    table does not know (a plug-in's) gets its own name as its badge and concerns every number (better a
    caveat too many than one too few)."""
    label, concerns, caveat = _FLAG_BADGES.get(flag, (flag.replace("_", " "), None, "may be wrong: see the flag"))
    return FlagInfo(flag, label, docs.get(flag, ""), concerns, caveat)


def caveats(flags: list[str], docs: Mapping[str, str]) -> dict[str, list[FlagInfo]]:
    """Per metric name, the flags of ``flags`` that concern it ("*" for flags that concern every number)."""
    out: dict[str, list[FlagInfo]] = {}
    for flag in flags:
        info = flag_info(flag, docs)
        for metric in ("*",) if info.concerns is None else info.concerns:
            out.setdefault(metric, []).append(info)
    return out


@dataclass(frozen=True)
class CorrelationLine:
    """One line of a board's "Do the axes agree?" block: the question in words and the answer
    (:meth:`BoardCorrelation.text`), with the models it is over."""

    question: str
    over: str
    answer: str


def correlation_lines(correlations: list[BoardCorrelation], labels: Mapping[str, str]) -> list[CorrelationLine]:
    """The board's correlations as sentences, in their order; ``labels``: metric name → column label."""
    lines = []
    for c in correlations:
        x, y = labels.get(c.x, c.x), labels.get(c.y, c.y)
        verb = "agree with" if c.x == HUMAN else "go with"
        question = f"Does {x} {verb} {y}?"
        over = "all ranked models" if c.group is None else f"models of architecture {c.group}"
        lines.append(CorrelationLine(question, over, c.text()))
    return lines


@dataclass(frozen=True)
class IntroStrip:
    """The NSPGD walk the index shows in its introduction: one strip a ranked run stored
    (:class:`invarbench.site.build.ImageStrip`), ``src`` relative to the site's root (the copy its model
    page holds), the model's name and page, and the board it is from."""

    strip: object  # ImageStrip
    src: str
    model: str
    href: str
    board: str


def intro_strip(store, boards: list) -> IntroStrip | None:  # a Store and DatasetBoards
    """One NSPGD strip for the index's introduction: of the first board's ranked models in rank order, the
    first strip whose end point the model still gives the source's class (a walk that shows excessive
    invariance), else the first strip of any; None when no ranked run stored one."""
    from pathlib import PurePosixPath

    from invarbench.site.build import _strips, model_page_path

    fallback = None
    for board in boards:
        for row in board.rows:
            page = PurePosixPath(model_page_path(board, row.card_id))
            strips = _strips(store.get_run(row.run_id), page.stem)
            for strip in strips:
                found = IntroStrip(strip, f"{page.parent}/{strip.src}", row.name, str(page), board.slug)
                if strip.panels[-2].predicted == strip.panels[0].predicted:
                    return found
                fallback = fallback or found
        if fallback is not None:
            return fallback
    return fallback


def index_context(store, boards: list) -> dict[str, object]:  # a Store and DatasetBoards
    """What the index's template needs besides the boards: the repository's links
    (:func:`invarbench.site.protocol.repository_url`), the introduction's strip, the metric groups'
    headings and labels, and per board (by slug) its filters' choices, its flags' legend, each row's caveats by metric,
    and its correlations in words."""
    from invarbench.measurements import flag_docs, metric_specs
    from invarbench.site.protocol import contributing_url, docs_link, docs_url, intervals_line, repository_url

    docs = flag_docs()
    labels = {s.name: s.label for s in metric_specs()}
    return {
        "repository": repository_url(),
        "docs_url": docs_url(),
        "contributing_url": contributing_url(),
        "intervals": intervals_line(),
        "intro": intro_strip(store, boards),
        "all_training_help": ALL_TRAINING_HELP,
        "zero_median_docs": docs_link("measurements.md", "1.2 Minimal L2 distance"),
        "choices_by_board": {
            b.slug: {
                # The board's pending models count too: a filter that finds only them names them.
                "training": training_choices({r.training for r in [*b.rows, *b.pending_models]}),
                "family": sorted({r.family for r in [*b.rows, *b.pending_models]}),
                "flag": sorted({f for r in b.rows for f in r.flags}),
            }
            for b in boards
        },
        "legends": {
            b.slug: [flag_info(f, docs) for f in sorted({f for r in [*b.rows, *b.unranked] for f in r.flags})]
            for b in boards
        },
        # Per board, the runs whose median minimal distance is 0 for their clean accuracy below one half.
        "zero_median": {
            b.slug: {r.run_id for r in [*b.rows, *b.unranked] if median_distance_is_zero(r)} for b in boards
        },
        "row_caveats": {b.slug: {r.run_id: caveats(r.flags, docs) for r in [*b.rows, *b.unranked]} for b in boards},
        "badges_by_flag": {f: flag_info(f, docs) for f in docs}
        | {f: flag_info(f, docs) for b in boards for r in [*b.rows, *b.unranked] for f in r.flags},
        "agreement": {b.slug: correlation_lines(b.correlations, labels) for b in boards},
        "column_groups": {b.slug: column_groups(b.columns) for b in boards},
        "metric_labels": labels,
    }


@dataclass(frozen=True)
class ColumnGroup:
    """A heading over adjacent metric columns of one group (``key``: the ``MetricSpec.group``, "other" for
    none), its ``label`` and how many columns it spans."""

    key: str
    label: str
    span: int


def column_groups(columns: list) -> list[ColumnGroup]:  # build.Column
    """The group headings over ``columns`` (each with ``.group``), in their order; adjacent columns of one
    group share a heading."""
    from invarbench.measurements.base import METRIC_GROUPS

    out: list[ColumnGroup] = []
    for col in columns:
        key = col.group or "other"
        if out and out[-1].key == key:
            out[-1] = ColumnGroup(key, out[-1].label, out[-1].span + 1)
        else:
            out.append(ColumnGroup(key, METRIC_GROUPS.get(key, "Other"), 1))
    return out
