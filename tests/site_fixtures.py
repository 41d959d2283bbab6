"""A realistic leaderboard for the site's tests: a board of 30 models and a small second board.

The reference LeNets' published runs of ``standard v4`` (a standard and a PGD-trained LeNet, kept in
``tests/data/site_seeds/mnist5k``) are the seeds. Each fixture model takes one of them and changes its
per-example values the way another model's would differ: examples it misclassifies, examples PGD
breaks or does not, minimal adversarial distances scaled, NSPGD walks that close more or less of the
way, equi-confidence tubes stretched along the radius (the widths recomputed from the stretched
quantiles by :func:`invarbench.attacks.pathwidth.width_from_tube`), the boundary search beating FMN
or not (so ``gradient_attack_weaker_than_search`` follows from the values). Its metrics and flags
are then computed by the suite's own aggregation from those values, exactly as a run computes them,
and every document goes in through the results door (:func:`invarbench.store.results_files.import_path`),
which recomputes them again: the site renders the fixture as it renders real runs. Each model keeps
its seed's NSPGD image strips, so model pages render fully.

Boards (:data:`BOARD`, :data:`SECOND_BOARD`): ``mnist5k-standard-v4`` with the 30 models of
:data:`MODELS` (training methods standard, pgd-at, trades, certified and other; eight architecture
families; five flagged; some very long names) plus one smoke run listed apart, and ``mnist-standard-v4``
with the three models of :data:`SECOND`.

Fixtures for test modules (import the ones you use: ``from tests.site_fixtures import ...`` does not
work as tests/ is no package, so ``from site_fixtures import board_store, board_site, served_site``):

- ``board_results`` (session): the folder of results files, for ``site build --results``;
- ``board_store`` (session): a :class:`~invarbench.store.Store` (SQLite in a tmp folder) holding them;
- ``board_site`` (session): the site built from that store into a tmp folder, by
  :func:`invarbench.site.build.build_site`; its ``index.html``'s folder;
- ``served_site`` (session): ``board_site`` served over HTTP on 127.0.0.1 (a thread of
  :class:`http.server.ThreadingHTTPServer`); its base URL, ending in ``/``.

Building the results takes a few seconds (the aggregation's bootstraps), the site about as long.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import http.server
import json
import math
import random
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEEDS = (
    REPO / "tests" / "data" / "site_seeds" / "mnist5k"
)  # the reference LeNets' published standard v4 runs, kept as seeds
STANDARD_SEED = "lenet-standard__standard-v4"
ADVERSARIAL_SEED = "lenet-pgd-at__standard-v4"
BOARD = "mnist5k-standard-v4"
SECOND_BOARD = "mnist-standard-v4"
WEAKER = "gradient_attack_weaker_than_search"
_NSPGD_SOURCES = 100  # the seeds' NSPGD pairs start at examples 0..99: misclassifying those would change the walks


@dataclass(frozen=True)
class FixtureModel:
    """One model of the fixture: its card and how its values differ from its seed's.

    ``seed``: ``"standard"`` or ``"adversarial"`` (which published run it starts from); ``arch``: a
    registered architecture; ``method``, ``norm``, ``eps``: the card's training; ``errors``: how many
    more examples it misclassifies (of the 1,000); ``linf``, ``l2``: its robust accuracies (shares of
    the examples, reached by breaking or keeping examples the seed kept or broke; None: the seed's);
    ``distance``: the factor on its minimal adversarial distances; ``closure``: the factor on its NSPGD
    closures; ``width``: the stretch of its tubes along the radius (each of the three factors also
    varied by up to 4 % per model, so that no two models tie); ``flagged``: whether the boundary search beats
    FMN on more than 10 % of the examples (``gradient_attack_weaker_than_search``)."""

    slug: str
    name: str
    seed: str
    arch: str
    method: str
    norm: str | None = None
    eps: float | None = None
    errors: int = 0
    linf: float | None = None
    l2: float | None = None
    distance: float = 1.0
    closure: float = 1.0
    width: float = 1.0
    flagged: bool = False
    paper: tuple[str, str] | None = None  # (title, url)


S, A = "standard", "adversarial"
MODELS: tuple[FixtureModel, ...] = (
    FixtureModel("lenet-standard-a", "LeNet-5 (standard training)", S, "lenet", "standard", errors=5, l2=0.15),
    FixtureModel("lenet-standard-b", "LeNet-5, second seed", S, "lenet", "standard", errors=12, l2=0.12, width=1.1),
    FixtureModel("smallcnn-standard", "SmallCNN (standard)", S, "smallcnn", "standard", errors=2, l2=0.2, width=0.9),
    FixtureModel(
        "resnet18-standard", "ResNet-18 (standard training)", S, "resnet18", "standard", l2=0.22, distance=1.1
    ),
    FixtureModel(
        "resnet20-standard", "ResNet-20 (He et al. 2016)", S, "resnet20", "standard", errors=8, l2=0.18, width=1.2
    ),
    FixtureModel(
        "resnet56-standard",
        "ResNet-56 (standard training, 200 epochs, cosine learning rate, label smoothing 0.1)",
        S,
        "resnet56",
        "standard",
        errors=3,
        l2=0.25,
        distance=1.15,
        closure=1.1,
    ),
    FixtureModel(
        "wrn-28-10-standard", "WideResNet-28-10 (standard)", S, "wide_resnet28_10", "standard", l2=0.3, width=0.8
    ),
    FixtureModel("mlp-standard", "ERAN MLP 6×100 (standard)", S, "eran_mlp", "standard", errors=20, l2=0.05),
    FixtureModel("lenet-pgd-at", "LeNet-5 (PGD-AT, L∞ ε=0.3)", A, "lenet", "pgd-at", "linf", 0.3, linf=0.82, l2=0.5),
    FixtureModel(
        "smallcnn-pgd-at", "SmallCNN (PGD-AT, L∞ ε=0.3)", A, "smallcnn", "pgd-at", "linf", 0.3, errors=4, linf=0.86
    ),
    FixtureModel(
        "resnet18-pgd-at",
        "ResNet-18 (Madry et al. PGD adversarial training, L∞ ε=0.3, 40 steps)",
        A,
        "resnet18",
        "pgd-at",
        "linf",
        0.3,
        linf=0.89,
        l2=0.6,
        distance=1.2,
        width=1.3,
        flagged=True,
        paper=("Towards Deep Learning Models Resistant to Adversarial Attacks", "https://arxiv.org/abs/1706.06083"),
    ),
    FixtureModel(
        "resnet20-pgd-at-l2", "ResNet-20 (PGD-AT, L2 ε=2)", A, "resnet20", "pgd-at", "l2", 2.0, linf=0.4, l2=0.71
    ),
    FixtureModel(
        "wrn-28-10-pgd-at",
        "WideResNet-28-10 (PGD-AT, L∞ ε=0.3)",
        A,
        "wide_resnet28_10",
        "pgd-at",
        "linf",
        0.3,
        errors=1,
        linf=0.91,
        l2=0.64,
        width=1.4,
    ),
    FixtureModel(
        "wrn-34-10-pgd-at", "WideResNet-34-10 (PGD-AT)", A, "wide_resnet34_10", "pgd-at", "linf", 0.3, linf=0.9
    ),
    FixtureModel(
        "preact-resnet18-pgd-at",
        "PreAct ResNet-18 (PGD-AT, early stopping)",
        A,
        "preact_resnet18",
        "pgd-at",
        "linf",
        0.3,
        linf=0.85,
        width=1.15,
    ),
    FixtureModel(
        "lenet-trades", "LeNet-5 (TRADES, β=6)", A, "lenet", "trades", "linf", 0.3, linf=0.84, l2=0.55, closure=0.9
    ),
    FixtureModel(
        "smallcnn-trades",
        "SmallCNN (TRADES, β=6, L∞ ε=0.3; Zhang et al. 2019)",
        A,
        "smallcnn",
        "trades",
        "linf",
        0.3,
        linf=0.93,
        l2=0.66,
        closure=0.85,
        width=1.5,
        paper=(
            "Theoretically Principled Trade-off between Robustness and Accuracy",
            "https://arxiv.org/abs/1901.08573",
        ),
    ),
    FixtureModel(
        "resnet18-trades",
        "ResNet-18 (TRADES)",
        A,
        "resnet18",
        "trades",
        "linf",
        0.3,
        errors=6,
        linf=0.88,
        flagged=True,
    ),
    FixtureModel(
        "wrn-34-10-trades",
        "WideResNet-34-10 (TRADES, β=6)",
        A,
        "wide_resnet34_10",
        "trades",
        "linf",
        0.3,
        linf=0.92,
        l2=0.68,
        width=1.45,
    ),
    FixtureModel(
        "colt-convmed",
        "ConvMed (COLT certified training, L∞ ε=0.1)",
        A,
        "colt_convmed",
        "certified",
        "linf",
        0.1,
        linf=0.62,
        l2=0.4,
    ),
    FixtureModel(
        "kw-cnn-certified",
        "Wong & Kolter convex outer polytope (certified, L∞ ε=0.1)",
        A,
        "kw_mnist_cnn",
        "certified",
        "linf",
        0.1,
        errors=15,
        linf=0.55,
        l2=0.45,
        distance=0.9,
        closure=0.8,
        width=1.25,
    ),
    FixtureModel(
        "eran-convsmall-certified",
        "ERAN ConvSmall (DiffAI certified)",
        A,
        "eran_convsmall",
        "certified",
        "linf",
        0.1,
        errors=10,
        linf=0.48,
        flagged=True,
    ),
    FixtureModel(
        "madrycnn-certified",
        "MadryCNN tiny (BaB-Attack)",
        A,
        "madry_cnn_tiny_nopool",
        "certified",
        "linf",
        0.3,
        linf=0.7,
        width=0.85,
    ),
    FixtureModel(
        "smallcnn-other-gaussian",
        "SmallCNN (Gaussian data augmentation σ=0.5)",
        S,
        "smallcnn",
        "other",
        errors=9,
        linf=0.02,
        l2=0.35,
        distance=1.3,
        width=1.35,
    ),
    FixtureModel(
        "resnet18-other-jpeg",
        "ResNet-18 with a JPEG-compression input transform",
        S,
        "resnet18",
        "other",
        errors=11,
        linf=0.3,
        l2=0.4,
        flagged=True,
    ),
    FixtureModel(
        "lenet-other-distilled",
        "LeNet-5 (defensive distillation, T=100)",
        S,
        "lenet",
        "other",
        errors=7,
        linf=0.15,
        l2=0.25,
        flagged=True,
        closure=1.2,
    ),
    FixtureModel("resnet32-standard", "ResNet-32 (standard)", S, "resnet32", "standard", errors=4, l2=0.19, width=1.05),
    FixtureModel("resnet44-standard", "ResNet-44 (standard)", S, "resnet44", "standard", errors=2, l2=0.21, width=0.95),
    FixtureModel(
        "wrn-70-16-pgd-at",
        "WideResNet-70-16 (PGD-AT with 1M generated images, L∞ ε=0.3)",
        A,
        "wide_resnet70_16",
        "pgd-at",
        "linf",
        0.3,
        linf=0.95,
        l2=0.75,
        distance=1.35,
        width=1.6,
    ),
    FixtureModel(
        "preact-resnet18-trades", "PreAct ResNet-18 (TRADES)", A, "preact_resnet18", "trades", "linf", 0.3, linf=0.87
    ),
)
SECOND: tuple[FixtureModel, ...] = (
    FixtureModel("lenet-standard", "LeNet-5 (standard)", S, "lenet", "standard", l2=0.14),
    FixtureModel("lenet-pgd-at", "LeNet-5 (PGD-AT)", A, "lenet", "pgd-at", "linf", 0.3, linf=0.8),
    FixtureModel("smallcnn-trades", "SmallCNN (TRADES)", A, "smallcnn", "trades", "linf", 0.3, linf=0.9, width=1.3),
)
SMOKE = MODELS[0]  # also has a smoke run (the first batch only), listed apart on the big board
FLAGGED = tuple(m.slug for m in MODELS if m.flagged)


# --- the per-example values of one fixture model --------------------------------------------------------
def _merged(doc: dict) -> tuple[dict[str, dict[str, list]], dict[str, list[tuple[int, int]]]]:
    """The document's values concatenated in batch order, and per measurement its batches' (start, length)."""
    from invarbench.store.codec import decode_floats

    merged: dict[str, dict[str, list]] = {}
    layout: dict[str, list[tuple[int, int]]] = {}
    for e in sorted(doc["examples"], key=lambda e: (e["measurement"], e["batch_start"])):
        values = decode_floats(e["values"])
        into = merged.setdefault(e["measurement"], {})
        for name, vals in values.items():
            into.setdefault(name, []).extend(vals)
        length = len(next(iter(values.values()))) if values else 0
        layout.setdefault(e["measurement"], []).append((e["batch_start"], length))
    return merged, layout


def _split(merged: dict[str, dict[str, list]], layout: dict[str, list[tuple[int, int]]]) -> list[dict]:
    from invarbench.store.codec import encode_floats

    examples = []
    for measurement in sorted(layout):
        at = 0
        for start, length in layout[measurement]:
            values = {name: vals[at : at + length] for name, vals in merged[measurement].items()}
            examples.append({"measurement": measurement, "batch_start": start, "values": encode_floats(values)})
            at += length
    return examples


def _misclassify(values: dict, rng: random.Random, count: int) -> None:
    clean = values["clean"]
    candidates = [i for i, ok in enumerate(clean["correct"]) if ok and i >= _NSPGD_SOURCES]
    for i in rng.sample(candidates, count):
        clean["pred"][i] = (clean["label"][i] + 1 + rng.randrange(9)) % 10
        clean["correct"][i] = False
        clean["confidence"][i] = 0.4 + 0.5 * rng.random()
        for attack in ("pgd_linf", "pgd_l2"):
            pgd = values[attack]
            pgd["robust"][i], pgd["broken_at"][i], pgd["broken_by"][i] = False, -1, "clean"
            pgd["apgd_ce_broken_at"][i] = pgd["apgd_t_broken_at"][i] = None
        mn = values["min_norm"]
        mn["distance"][i], mn["fmn_distance"][i], mn["search_distance"][i], mn["method"][i] = (
            0.0,
            0.0,
            math.inf,
            ("misclassified"),
        )


def _robust_share(values: dict, attack: str, share: float, rng: random.Random, settings: dict) -> None:
    """Break or keep examples until ``share`` of all examples are robust (only correctly classified ones can be)."""
    pgd, correct = values[attack], values["clean"]["correct"]
    n = len(pgd["robust"])
    want = min(round(share * n), sum(correct))
    robust = [i for i in range(n) if pgd["robust"][i]]
    if len(robust) > want:
        for i in rng.sample(robust, len(robust) - want):
            pgd["robust"][i], pgd["broken_by"][i] = False, "pgd"
            pgd["broken_at"][i] = rng.randrange(settings["steps"] + 1)
            pgd["apgd_ce_broken_at"][i] = pgd["apgd_t_broken_at"][i] = None
    elif len(robust) < want:
        apgd = settings["apgd"]
        broken = [i for i in range(n) if correct[i] and not pgd["robust"][i]]
        for i in rng.sample(broken, want - len(robust)):
            pgd["robust"][i], pgd["broken_by"][i] = True, None
            pgd["broken_at"][i] = settings["restarts"] * (settings["steps"] + 1)
            pgd["apgd_ce_broken_at"][i] = apgd["restarts"] * (apgd["steps"] + 1)
            pgd["apgd_t_broken_at"][i] = apgd["targets"] * apgd["restarts"] * (apgd["steps"] + 1)


def _distances(values: dict, factor: float, flagged: bool, rng: random.Random, fraction: float) -> None:
    """Scale the minimal distances; make the boundary search win on 20 % of the examples (flagged) or 5 %."""
    mn = values["min_norm"]
    for key in ("distance", "fmn_distance", "search_distance"):
        mn[key] = [d * factor if math.isfinite(d) else d for d in mn[key]]
    correct = [i for i, m in enumerate(mn["method"]) if m != "misclassified"]
    share = 2 * fraction if flagged else fraction / 2
    wins = set(rng.sample(correct, round(share * len(correct))))
    for i in correct:
        fmn, search = mn["fmn_distance"][i], mn["search_distance"][i]
        if i in wins:
            search = min(search, fmn * (0.8 + 0.15 * rng.random()))
        elif search <= fmn:
            search = fmn * (1.05 + 0.3 * rng.random())
        mn["search_distance"][i] = search
        mn["distance"][i] = min(fmn, search)
        mn["method"][i] = "search" if search < fmn else "fmn"


def _closures(values: dict, factor: float) -> None:
    walk = values["nspgd"]
    for i, ok in enumerate(walk["valid"]):
        if ok:
            closure = min(0.97, walk["closure"][i] * factor)
            walk["closure"][i] = closure
            walk["remaining_l2"][i] = walk["initial_l2"][i] * (1 - closure)


def _stretch(p0: float, q: list[float], radii: list[float], factor: float) -> list[float]:
    """The quantile curve through (0, p0) and (radii, q), piecewise linear, read at radii / factor (held flat
    beyond the largest radius): the same tube ``factor`` times as wide."""
    xs, ys = [0.0, *radii], [p0, *q]
    out = []
    for r in radii:
        x = r / factor
        if x >= xs[-1]:
            out.append(ys[-1])
            continue
        k = next(k for k in range(1, len(xs)) if xs[k] >= x)
        t = (x - xs[k - 1]) / (xs[k] - xs[k - 1])
        out.append(ys[k - 1] + t * (ys[k] - ys[k - 1]))
    return out


def _tubes(values: dict, factor: float, settings: dict) -> None:
    import torch

    from invarbench.attacks.pathwidth import width_from_tube

    pw, radii = values["path_width"], settings["radii"]
    for k in range(len(pw["pair"])):
        widths = []
        for j, ok in enumerate(pw["point_valid"][k]):
            if not ok:
                continue
            p0 = pw["p0"][k][j]
            pw["q_lo"][k][j] = lo = _stretch(p0, pw["q_lo"][k][j], radii, factor)
            pw["q_hi"][k][j] = _stretch(p0, pw["q_hi"][k][j], radii, factor)
            width, censored = width_from_tube(
                torch.tensor([p0], dtype=torch.float32),
                torch.tensor([lo], dtype=torch.float32),
                torch.tensor(radii, dtype=torch.float32),
                settings["width_fraction"],
            )
            pw["width"][k][j] = float(width[0])
            pw["censored"][k][j] = bool(censored[0])
            widths.append(pw["width"][k][j])
        pw["mean_width"][k] = math.fsum(widths) / len(widths) if widths else None


# --- one results document ---------------------------------------------------------------------------------
def _card_yaml(model: FixtureModel, dataset: str) -> tuple[str, str]:
    """The card (YAML text) and the sha256 of the model file it pins."""
    file_sha = hashlib.sha256(f"{dataset}/{model.slug} weights".encode()).hexdigest()
    lines = [
        "# A model of the site's test fixture (tests/site_fixtures.py).",
        "schema_version: 1",
        f"id: {dataset}/{model.slug}",
        f"name: {json.dumps(model.name, ensure_ascii=False)}",
        f"dataset: {dataset}",
        "num_classes: 10",
        "source:",
        f"  path: {model.slug}.safetensors",
        f"  sha256: {file_sha}",
        "format: safetensors",
        "architecture:",
        f"  name: {model.arch}",
        "  kwargs: {num_classes: 10, in_channels: 1}",
        "preprocessing:",
        "  mean: [0.1307]",
        "  std: [0.3081]",
        "  input_size: [1, 28, 28]",
        "training:",
        f"  method: {model.method}",
    ]
    if model.norm is not None:
        lines += [f"  norm: {model.norm}", f"  epsilon: {model.eps}"]
    if model.paper is not None:
        title, url = model.paper
        lines += ["paper:", f"  title: {json.dumps(title)}", f"  url: {url}"]
    lines += ["license: MIT", "submitted_by: invarbench test fixture"]
    if model.method == "other":
        lines.append(f"notes: {json.dumps(model.name + ': a defence outside the listed training methods.')}")
    return "\n".join(lines) + "\n", file_sha


@functools.cache
def _seed(name: str) -> dict:
    return json.loads((SEEDS / f"{name}.json").read_text(encoding="utf-8"))


def fixture_document(model: FixtureModel, dataset: str, index: int, *, smoke: bool = False) -> dict:
    """The results document (format of docs/store.md) of ``model``'s run on ``dataset``'s board: its seed's
    document with the model's card, its changed per-example values, and the metrics and flags the suite's
    aggregation computes from them. ``index`` orders the runs' times; ``smoke``: the first batch only."""
    from invarbench.measurements import aggregate, result_flags
    from invarbench.store.document_checks import recorded_suite
    from invarbench.store.documents import content_digest

    seed_name = STANDARD_SEED if model.seed == S else ADVERSARIAL_SEED
    doc = copy.deepcopy(_seed(seed_name))
    run = doc["run"]
    settings = copy.deepcopy(run["suite_settings"])
    settings["dataset"] = dataset
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    run["suite_settings"], run["suite_settings_hash"] = settings, hashlib.sha256(text.encode()).hexdigest()
    run["dataset"] = dataset

    rng = random.Random(f"{dataset}/{model.slug}")
    values, layout = _merged(doc)
    measurements = settings["measurements"]
    _misclassify(values, rng, model.errors)
    for attack, share in (("pgd_linf", model.linf), ("pgd_l2", model.l2)):
        if share is not None:
            _robust_share(values, attack, share, rng, measurements[attack])
    jitter = [1 + 0.04 * (2 * rng.random() - 1) for _ in range(3)]
    fraction = settings["checks"]["search_beats_gradient_fraction"]
    _distances(values, model.distance * jitter[0], model.flagged, rng, fraction)
    _closures(values, model.closure * jitter[1])
    _tubes(values, model.width * jitter[2], measurements["path_width"])
    if smoke:
        layout = {m: [b for b in batches if b[0] == 0] for m, batches in layout.items()}
        values = {m: {k: v[: layout[m][0][1]] for k, v in fields.items()} for m, fields in values.items()}
        run["examples_effective"] = layout["clean"][0][1]
    doc["examples"] = _split(values, layout)

    suite = recorded_suite(run["suite_name"], run["suite_version"], dataset, settings, run["suite_settings_hash"], "")
    doc["metrics"] = [
        {"name": m.name, "value": m.value, "stderr": m.stderr, "ci_low": m.ci_low, "ci_high": m.ci_high, "n": m.n}
        for m in aggregate(values, suite)
    ]
    run["flags"] = list(result_flags(values, suite))
    card, file_sha = _card_yaml(model, dataset)
    doc["model"] = {
        "card_id": f"{dataset}/{model.slug}",
        "name": model.name,
        "dataset": dataset,
        "training_method": model.method,
        "card_sha256": hashlib.sha256(card.encode()).hexdigest(),
        "file_sha256": file_sha,
        "hub_repo": None,
        "hub_revision": None,
        "card_yaml": card,
    }
    run["uid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"invarbench-site-fixture/{dataset}/{model.slug}/{smoke}"))
    started = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc) + timedelta(hours=5 * index)
    duration = 300.0 + 37.0 * index + (0 if model.seed == S else 900.0)
    run["started_at"] = started.isoformat()
    run["finished_at"] = (started + timedelta(seconds=duration)).isoformat()
    run["duration_s"] = duration
    doc["content_sha256"] = content_digest(doc)
    return doc


def write_fixture_results(folder: Path, runs: list[tuple[FixtureModel, str, bool]] | None = None) -> list[Path]:
    """Write the fixture's results files (and their image strips beside them) under ``folder``: the 30 models
    of :data:`MODELS` and a smoke run of :data:`SMOKE` on mnist5k, the models of :data:`SECOND` on mnist; or
    the ``runs`` given, each (model, data set, smoke). Returns the files written."""
    from invarbench.store.documents import dumps

    written = []
    if runs is None:
        runs = (
            [(m, "mnist5k", False) for m in MODELS] + [(SMOKE, "mnist5k", True)] + [(m, "mnist", False) for m in SECOND]
        )
    for index, (model, dataset, smoke) in enumerate(runs):
        doc = fixture_document(model, dataset, index, smoke=smoke)
        stem = f"{model.slug}__standard-v4" + ("-smoke" if smoke else "")
        target = folder / dataset / f"{stem}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        seed_name = STANDARD_SEED if model.seed == S else ADVERSARIAL_SEED
        shutil.copytree(SEEDS / f"{seed_name}.artifacts", target.parent / f"{stem}.artifacts")
        for artifact in doc["artifacts"]:
            artifact["path"] = f"{stem}.artifacts/{artifact['name']}"
        target.write_text(dumps(doc), encoding="utf-8")
        written.append(target)
    return written


# --- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def board_results(tmp_path_factory) -> Path:
    """The fixture's results files (:func:`write_fixture_results`), in a session tmp folder."""
    folder = tmp_path_factory.mktemp("site-fixture") / "results"
    write_fixture_results(folder)
    return folder


@pytest.fixture(scope="session")
def board_store(board_results, tmp_path_factory) -> Iterator:
    """A SQLite store holding the fixture's runs, imported through the results door."""
    from invarbench.store import Store
    from invarbench.store.results_files import import_path

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('site-fixture-db') / 'store.db'}")
    try:
        import_path(store, board_results)
        yield store
    finally:
        store.close()


@pytest.fixture(scope="session")
def board_site(board_store, tmp_path_factory) -> Path:
    """The site built from :func:`board_store` (no registered cards); the folder of its ``index.html``."""
    from invarbench.site.build import build_site

    out = tmp_path_factory.mktemp("site-fixture-site") / "site"
    build_site(board_store, out, cards_dir=tmp_path_factory.mktemp("no-cards"))
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # the base class's signature
        pass


@pytest.fixture(scope="session")
def served_site(board_site) -> Iterator[str]:
    """:func:`board_site` served over HTTP on 127.0.0.1 (a free port); yields the base URL, ending in ``/``."""
    handler = functools.partial(_QuietHandler, directory=str(board_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
