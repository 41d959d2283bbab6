"""``human_invariance``: the model's predictions on the 350 MNIST invariance examples whose labels a
human study gave, against those labels (Tramèr, Behrmann, Carlini, Papernot and Jacobsen,
"Fundamental tradeoffs between invariance and sensitivity to adversarial perturbations", ICML 2020).

The images change what a digit *is* within a small L∞ (ε = 0.3, 0.4) or L0 budget; on 157 of them
the human labellers gave another label than the MNIST original. A model that keeps the original
label there is excessively invariant, by human judgement. The images are a fixed probe set,
independent of the evaluated split: the measurement runs once per run, in the batch that starts
at example 0 (``per="probe"``), so neither the batch size nor the split changes its numbers.

Data: ``human_invariance_data/`` (the upstream's ``.npy`` files byte for byte, MIT licence, each
checked against the sha256 recorded here; its README gives the provenance and the citation).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from invarbench.errors import ValidationError
from invarbench.measurements.base import BatchContext, BatchOutput, Measurement, MetricSpec, PerExample, floats
from invarbench.measurements.images import GAP_PX, panel_scale
from invarbench.metrics.stats import MetricValue, proportion_metric

DATA_DIR = Path(__file__).resolve().parent / "human_invariance_data"
UPSTREAM = "https://github.com/ftramer/Excessive-Invariance, commit 780cab97, invariance_examples/"

# The upstream files (invariance_examples/ at 780cab97), by path in the data folder, and their sha256.
UPSTREAM_SHA256 = {
    "indexs.npy": "a6bd76c3327259475ff8d4e48a4c49cb1fd84df90bd651c45312486b3903968d",
    "l0/automated.npy": "02eb24c04a8b7a26c397fa02e4ae90d43c9e0818eb9f6dcd007953d5279c6d8b",
    "l0/automated_labels.npy": "8e4387f2a9e89678911071838dbf82a59788f49a07784b8960a3310c640a30ec",
    "linf/automated_eps03.npy": "3f1dad7705a272bee7ff6186e241b591a4bba88f7f3a94c686954ba7f78bb986",
    "linf/automated_eps03_labels.npy": "79c93e7ab230591861ea74996ba6c95942290ed9e209e83f0b45b6b0c468ad18",
    "linf/automated_eps04.npy": "751cbe4a5a2b85255e6e38a12e9eca690b2a4d54dc8e9e0d9dd6a582aec37978",
    "linf/automated_eps04_labels.npy": "bb28481ffe49bf13a77a06f43e32895e6270739119e1fc2e1e232aa02bc11316",
    "linf/manual_eps04.npy": "d3e40f37cda8dffb29a08cf8edd56ebd5838e302468a1f7bdc77f58ee662dd5f",
    "linf/manual_eps04_labels.npy": "c953a34663c9c8aeda12a2f1231a6c6ba035a3f9687ac10abcebfb5660390550",
    "linf/manual_indexs.npy": "f92394039cbd784ec8da5adcd653f63c81cf805c474b5fc43a7357e4afc882cc",
}
ORIGINAL_LABELS = "original_labels.json"  # derived by human_invariance_data/derive_original_labels.py


@dataclass(frozen=True)
class ProbeSetFiles:
    """One of the four sets: its images (``[n, 28, 28]`` on the 0-255 scale), the human labels, and the
    file of the MNIST test indices its images were made from (the original labels' key)."""

    images: str
    human_labels: str
    index: str


SETS: dict[str, ProbeSetFiles] = {
    "linf-0.3": ProbeSetFiles("linf/automated_eps03.npy", "linf/automated_eps03_labels.npy", "indexs.npy"),
    "linf-0.4": ProbeSetFiles("linf/automated_eps04.npy", "linf/automated_eps04_labels.npy", "indexs.npy"),
    "linf-0.4-manual": ProbeSetFiles("linf/manual_eps04.npy", "linf/manual_eps04_labels.npy", "linf/manual_indexs.npy"),
    "l0": ProbeSetFiles("l0/automated.npy", "l0/automated_labels.npy", "indexs.npy"),
}


@dataclass(frozen=True)
class ProbeSet:
    """The probe images, in the order of :data:`SETS` and of each upstream file.

    ``x``: ``[N, 1, 28, 28]`` float32 in [0, 1] (each published value divided by 255 in float32,
    never rounded); ``sets``/``items``: each image's set and position in its upstream file;
    ``mnist_index``, ``original``, ``human``: int64 ``[N]``, the MNIST test index it was made from,
    that image's MNIST label, and the label the human study gave it."""

    x: torch.Tensor
    sets: tuple[str, ...]
    items: tuple[int, ...]
    mnist_index: np.ndarray
    original: np.ndarray
    human: np.ndarray

    @property
    def relabelled(self) -> np.ndarray:
        """bool ``[N]``: the humans gave another label than the original."""
        return self.human != self.original

    def select(self, sets: tuple[str, ...]) -> ProbeSet:
        """The images of ``sets`` only (still in :data:`SETS` order)."""
        keep = np.array([s in sets for s in self.sets], dtype=bool)
        rows = torch.as_tensor(np.flatnonzero(keep))
        return ProbeSet(
            self.x[rows],
            tuple(s for s, k in zip(self.sets, keep) if k),
            tuple(i for i, k in zip(self.items, keep) if k),
            self.mnist_index[keep],
            self.original[keep],
            self.human[keep],
        )


def _read_checked(folder: Path, name: str) -> bytes:
    path = folder / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(
            f"cannot read the human-invariance file {path} ({exc.strerror}): reinstall invarbench"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != UPSTREAM_SHA256[name]:
        raise ValidationError(
            f"the human-invariance file {path} has sha256 {digest}, not the upstream's {UPSTREAM_SHA256[name]}: "
            f"restore it from {UPSTREAM}"
        )
    return data


def _npy(folder: Path, name: str) -> np.ndarray:
    return np.load(io.BytesIO(_read_checked(folder, name)), allow_pickle=False)


def load_probe_set(folder: Path | None = None) -> ProbeSet:
    """The 350 probe images with their labels, read from ``folder`` (default: the packaged
    ``human_invariance_data/``, read once and cached).

    Every ``.npy`` file must have the upstream's sha256 (:data:`UPSTREAM_SHA256`) and is read with
    ``allow_pickle=False``; ``original_labels.json`` must give one MNIST label (0-9) per index.
    Raises :class:`ValidationError` (one line naming the file and the fix) otherwise."""
    if folder is None:
        return _packaged()
    return _load(folder)


@functools.cache
def _packaged() -> ProbeSet:
    return _load(DATA_DIR)


def _load(folder: Path) -> ProbeSet:
    try:
        labels_doc = json.loads((folder / ORIGINAL_LABELS).read_text())["labels"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValidationError(
            f"cannot read {folder / ORIGINAL_LABELS} ({type(exc).__name__}): derive it again with "
            "derive_original_labels.py from the MNIST test labels"
        ) from None
    xs, sets, items, index, original, human = [], [], [], [], [], []
    for name, files in SETS.items():
        images = _npy(folder, files.images)
        hum = _npy(folder, files.human_labels).astype(np.int64)
        idx = _npy(folder, files.index).astype(np.int64)
        orig = np.asarray(labels_doc.get(files.index, []), dtype=np.int64)
        n = images.shape[0]
        if images.shape[1:] != (28, 28) or hum.shape != (n,) or idx.shape != (n,):
            raise ValidationError(f"the human-invariance set {name} has mismatched shapes: reinstall invarbench")
        if orig.shape != (n,) or orig.min() < 0 or orig.max() > 9:
            raise ValidationError(
                f"{folder / ORIGINAL_LABELS} gives no 10-class label per index of {files.index}: derive it again "
                "with derive_original_labels.py"
            )
        xs.append(torch.from_numpy(images.astype(np.float32) / np.float32(255.0)))
        sets += [name] * n
        items += range(n)
        index.append(idx)
        original.append(orig)
        human.append(hum)
    return ProbeSet(
        x=torch.cat(xs).unsqueeze(1).contiguous(),
        sets=tuple(sets),
        items=tuple(items),
        mnist_index=np.concatenate(index),
        original=np.concatenate(original),
        human=np.concatenate(human),
    )


RELABELLED = MetricSpec(
    name="human_agreement_relabelled",
    label="Human agreement (relabelled)",
    unit="share of the images humans relabelled",
    better="higher",
    percent=True,
    aggregation="proportion",
    interval="Wilson score",
    group="invariance",
    reads="higher: less excessively invariant",
    description="on the invariance examples of Tramèr et al. (ICML 2020) whose label a human study changed "
    "(157 of 350 MNIST digits perturbed within L∞ 0.3/0.4 or L0), the share where the model predicts the "
    "human's label rather than keeping the original",
)
UNCHANGED = MetricSpec(
    name="human_agreement_unchanged",
    label="Human agreement (unchanged)",
    unit="share of the images humans did not relabel",
    better="higher",
    percent=True,
    aggregation="proportion",
    interval="Wilson score",
    group="invariance",
    reads="higher is better: a model that merely fails on perturbed digits scores low here",
    description="on the other 193 invariance examples of Tramèr et al., whose label humans kept, the share "
    "where the model predicts that label",
)


@dataclass(frozen=True)
class HumanInvarianceSettings:
    """``sets``: which of the four probe sets (:data:`SETS`) the run measures (default: all)."""

    sets: tuple[str, ...] = tuple(SETS)
    __pydantic_config__ = {"extra": "forbid"}

    def __post_init__(self) -> None:
        unknown = [s for s in self.sets if s not in SETS]
        if unknown or not self.sets or len(set(self.sets)) != len(self.sets):
            raise ValueError(
                f"human_invariance sets must be distinct names among {', '.join(SETS)}, got {list(self.sets)}"
            )


PROBE_SHAPE = (1, 28, 28)
GRID_COLUMNS = 10
PICTURE = "human-invariance-disagreements"  # artifact names: .png and .json


def measure(ctx: BatchContext, cfg: HumanInvarianceSettings) -> BatchOutput:
    """Predict every probe image once (one forward pass, in the batch that starts at example 0; any
    other batch returns nothing). Fields per image: its set and position, MNIST index, original and
    human labels, whether humans relabelled it, the model's prediction (argmax of the softmax in
    float64), its confidence (max softmax probability) and the probability of the human label. The
    images where the prediction differs from the human label are drawn (``artifacts``). Raises
    :class:`ValidationError` when the evaluated images are not 1x28x28 (an MNIST model)."""
    if ctx.start != 0:
        return BatchOutput({})
    if tuple(ctx.x.shape[1:]) != PROBE_SHAPE:
        raise ValidationError(
            f"human_invariance probes MNIST digits (1x28x28), the evaluated images are "
            f"{'x'.join(map(str, ctx.x.shape[1:]))}: leave it out of this data set's suites"
        )
    probe = load_probe_set().select(cfg.sets)
    with torch.no_grad():
        logits = ctx.model(probe.x.to(ctx.device))
    probs = torch.softmax(logits.double(), dim=1)
    confidence, pred = probs.max(dim=1)
    human = torch.as_tensor(probe.human, device=probs.device)
    fields = {
        "set": list(probe.sets),
        "item": list(probe.items),
        "mnist_index": probe.mnist_index.tolist(),
        "original_label": probe.original.tolist(),
        "human_label": probe.human.tolist(),
        "relabelled": probe.relabelled.tolist(),
        "pred": pred.tolist(),
        "confidence": floats(confidence),
        "p_human": floats(probs.gather(1, human[:, None])[:, 0]),
    }
    return BatchOutput(fields, artifacts=disagreement_picture(probe, fields))


def disagreement_picture(probe: ProbeSet, fields: dict[str, list]) -> dict[str, bytes]:
    """The probe images whose prediction differs from the human label, as one PNG grid of
    :data:`GRID_COLUMNS` columns (panels enlarged by :func:`invarbench.measurements.images.panel_scale`,
    nearest neighbour, :data:`GAP_PX` white pixels between them) and a JSON that gives, per panel, its
    set, position, MNIST index, original and human labels, the model's prediction and confidence, and
    where the panel lies in the PNG (``left``, ``top``, pixels). Empty when the model agrees on every
    image. Deterministic bytes."""
    rows = [i for i, (p, h) in enumerate(zip(fields["pred"], fields["human_label"])) if p != h]
    if not rows:
        return {}
    s = panel_scale(PROBE_SHAPE[1])
    size = PROBE_SHAPE[1] * s
    cols = min(GRID_COLUMNS, len(rows))
    lines = -(-len(rows) // cols)
    width, height = cols * size + (cols - 1) * GAP_PX, lines * size + (lines - 1) * GAP_PX
    canvas = np.full((height, width), 255, dtype=np.uint8)
    pixels = (probe.x[rows, 0].clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    pixels = pixels.repeat_interleave(s, dim=1).repeat_interleave(s, dim=2).numpy()
    panels = []
    for k, i in enumerate(rows):
        top, left = (k // cols) * (size + GAP_PX), (k % cols) * (size + GAP_PX)
        canvas[top : top + size, left : left + size] = pixels[k]
        panels.append(
            {
                "set": fields["set"][i],
                "item": fields["item"][i],
                "mnist_index": fields["mnist_index"][i],
                "original_label": fields["original_label"][i],
                "human_label": fields["human_label"][i],
                "relabelled": fields["relabelled"][i],
                "predicted": fields["pred"][i],
                "confidence": fields["confidence"][i],
                "left": left,
                "top": top,
            }
        )
    out = io.BytesIO()
    Image.fromarray(canvas).save(out, format="PNG", compress_level=9)  # no time stamp: same pixels, same bytes
    doc = {"image": f"{PICTURE}.png", "panel_size": size, "width": width, "height": height, "panels": panels}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"
    return {f"{PICTURE}.png": out.getvalue(), f"{PICTURE}.json": text.encode()}


def _agreement(values: dict[str, list], relabelled: bool) -> torch.Tensor:
    return torch.tensor(
        [p == h for p, h, r in zip(values["pred"], values["human_label"], values["relabelled"]) if r == relabelled],
        dtype=torch.bool,
    )


def aggregate(per_example: PerExample, cfg: HumanInvarianceSettings, suite: object) -> list[MetricValue]:  # noqa: ARG001
    values = per_example["human_invariance"]
    return [
        proportion_metric(RELABELLED.name, _agreement(values, True)),
        proportion_metric(UNCHANGED.name, _agreement(values, False)),
    ]


@dataclass(frozen=True)
class SetBreakdown:
    """One probe set's numbers (``set`` "all": the pooled ones): ``n`` images, ``relabelled`` of them
    relabelled by humans; the model's agreement with the humans on those (``relabelled_agree``, the
    metric), how often it kept the original label there (``relabelled_original``), and its agreement
    on the images humans did not relabel (``unchanged_agree`` of ``n - relabelled``)."""

    set: str
    n: int
    relabelled: int
    relabelled_agree: int
    relabelled_original: int
    unchanged_agree: int

    @property
    def unchanged(self) -> int:
        return self.n - self.relabelled


def breakdown(values: dict[str, list]) -> list[SetBreakdown]:
    """Per set (in :data:`SETS` order, sets the run measured), then pooled (``"all"``), from the
    stored per-example fields of ``human_invariance``."""
    present = [s for s in SETS if s in set(values.get("set", []))]
    out = []
    for name in [*present, "all"]:
        rows = [i for i, s in enumerate(values["set"]) if name == "all" or s == name]
        rel = [i for i in rows if values["relabelled"][i]]
        out.append(
            SetBreakdown(
                set=name,
                n=len(rows),
                relabelled=len(rel),
                relabelled_agree=sum(values["pred"][i] == values["human_label"][i] for i in rel),
                relabelled_original=sum(values["pred"][i] == values["original_label"][i] for i in rel),
                unchanged_agree=sum(
                    values["pred"][i] == values["human_label"][i] for i in rows if not values["relabelled"][i]
                ),
            )
        )
    return out


HUMAN_INVARIANCE = Measurement(
    name="human_invariance",
    description="predictions on the 350 human-labelled invariance examples of Tramèr et al. (ICML 2020)",
    settings=HumanInvarianceSettings,
    measure=measure,
    fields={
        "set": "probe set: linf-0.3, linf-0.4, linf-0.4-manual or l0",
        "item": "position of the image in its upstream file",
        "mnist_index": "the MNIST test image it was made from",
        "original_label": "that image's MNIST label",
        "human_label": "the label the human study gave the perturbed image",
        "relabelled": "human_label != original_label",
        "pred": "argmax of the model's softmax on the perturbed image",
        "confidence": "max softmax probability (float64)",
        "p_human": "softmax probability of the human label (float64)",
    },
    metrics=(RELABELLED, UNCHANGED),
    aggregate=aggregate,
    per="probe",
    summary=lambda cfg: "all 4 sets, 350 images" if cfg.sets == tuple(SETS) else ", ".join(cfg.sets),
    artifacts=(re.escape(PICTURE) + r"\.(png|json)",),
    docs=("measurements.md", "9. Invariance judged by humans"),
)
