"""What a measurement declares: its settings, its per-batch function, its per-example fields, its
metrics (and the flags it reads from its values). Pure computation: no I/O, no printing.

A measurement is one module in this package that builds one :class:`Measurement` and registers
it in :data:`invarbench.measurements.MEASUREMENTS`. Everything else — suite validation, the
runner, aggregation, the distributed schedule's costs, the store, the exports, the site's figures,
pictures and protocol links, the README table — reads measurements and metrics from that registry.
"""

from __future__ import annotations

import dataclasses
import math
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from invarbench.metrics.stats import MetricValue

if TYPE_CHECKING:  # the suite schema imports this package, not the other way round
    from invarbench.data.registry import EvalData
    from invarbench.progress import Note

PerExample = dict[str, dict[str, list]]
Better = Literal["higher", "lower"]
MetricGroup = Literal["sensitivity", "invariance", "calibration"]
# Each group's heading, in the order tables show them.
METRIC_GROUPS: dict[str, str] = {
    "calibration": "Clean accuracy and calibration",
    "sensitivity": "Sensitivity",
    "invariance": "Invariance",
}


@dataclass(frozen=True)
class MetricSpec:
    """One metric as every reader shows it.

    ``name`` is stable (stored with runs: renaming one is a breaking change); ``label`` is what a
    table heads its column with; ``unit`` what the number counts; ``better`` which way is better
    (None: neither, the number describes the model); ``percent``: a proportion shown as a
    percentage; ``aggregation`` how the per-example values become the number; ``interval`` the
    method of its 95 % interval ("normal": mean ± 1.96 standard errors, as ``mean_metric`` gives);
    ``reads`` one line on how to read it.

    ``lower``/``upper``: the range every value of the metric lies in, in its own units (a proportion:
    [0, 1], the default for ``aggregation="proportion"``; a distance: ``lower=0``); ``finite``: whether
    a value must be finite when it is a number (False: +inf is a value, e.g. a median distance when no
    adversarial example was found). NaN stands for "no number" (a metric over no examples) and is
    outside these checks. A results file's metrics are checked against them on import
    (:mod:`invarbench.store.document_checks`).

    ``group``: which question the metric answers, the heading the site groups its column under
    (:data:`METRIC_GROUPS`): ``"sensitivity"`` (small perturbations that change the prediction),
    ``"invariance"`` (large changes that do not), ``"calibration"`` (clean accuracy and confidence);
    None: another question (a plug-in's metric), shown under "Other"."""

    name: str
    label: str
    unit: str
    better: Better | None
    percent: bool
    aggregation: Literal["proportion", "mean", "median", "ece"]
    interval: Literal["Wilson score", "bootstrap percentile", "normal"]
    reads: str
    description: str
    lower: float = -math.inf
    upper: float = math.inf
    finite: bool = True
    group: MetricGroup | None = None

    def __post_init__(self) -> None:
        if self.aggregation == "proportion" and (self.lower, self.upper) == (-math.inf, math.inf):
            object.__setattr__(self, "lower", 0.0)  # a share of examples
            object.__setattr__(self, "upper", 1.0)
        if not self.lower <= self.upper:
            raise ValueError(f"metric {self.name}: lower {self.lower} is above upper {self.upper}")


@dataclass
class BatchOutput:
    """What a measurement returns for one batch: ``fields`` (per-example or per-pair lists, stored
    with the run; an empty mapping stores nothing), ``extra`` (in-memory results that later
    measurements of the same batch may use, never stored) and ``artifacts`` (files stored with the
    run beside the batch, e.g. the PNG of an image strip: plain file name -> bytes; names must be
    unique across the run, and no metric may read them)."""

    fields: dict[str, list]
    extra: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchContext:
    """Everything a measurement's per-batch function sees.

    ``x``: the batch's images ``[B, C, H, W]`` float32 in [0, 1] on ``device``; ``y``: their labels
    ``[B]`` int64; ``logits``: the clean logits ``[B, classes]`` (float32); ``pred``/``correct``: the
    clean predictions ``[B]`` (int64, bool); ``data``: the whole
    evaluated set (for measurements that pair examples with others); ``start``/``stop``: the batch's
    example range; ``generator``: this measurement's own random stream; ``results``: the outputs of
    the measurements that ran before it on this batch; ``note``: progress ("pgd_l2 step 12/40")."""

    model: nn.Module
    data: EvalData
    start: int
    stop: int
    x: torch.Tensor
    y: torch.Tensor
    logits: torch.Tensor
    pred: torch.Tensor
    correct: torch.Tensor
    device: torch.device
    suite: Any  # invarbench.suites.Suite
    generator: torch.Generator
    results: Mapping[str, BatchOutput]
    note: Note | None = None

    def stepper(self, name: str, total: int, unit: str = "step") -> Callable[[int, int], None] | None:
        """An attack's ``on_step(done, active)`` that reports ``"<name> <unit> done/total (active left)"``."""
        note = self.note
        if note is None:
            return None
        return lambda done, active: note(f"{name} {unit} {done}/{total} ({active} left)")


@dataclass(frozen=True)
class FigureData:
    """A figure a measurement declares for a run's model page, as data: the site draws it with the plot
    of ``kind`` (``"tube"`` takes the keyword arguments of :func:`invarbench.site.plots.tube_plot`,
    ``"distance_histogram"`` those of
    :func:`invarbench.site.plots.distance_histogram`), passing ``data`` as keyword arguments; ``title``
    heads it and ``caption`` says how to read it."""

    title: str
    kind: str
    data: Mapping[str, Any]
    caption: str = ""


@dataclass(frozen=True)
class Measurement:
    """A measurement as the registry holds it.

    - ``settings``: a frozen dataclass (the attack's own config, or a subclass that adds the
      measurement's own fields), which is what the suite YAML entry is validated against: one
      definition of every default and bound. Fields whose metadata has ``internal=True`` are not
      suite settings. ``None``: the measurement takes no settings and always runs (``clean``).
    - ``measure(ctx, settings) -> BatchOutput``: the per-batch function; it depends only on its
      arguments, so a resumed run recomputes nothing and changes nothing.
    - ``fields``: the per-example (or per-pair) fields it stores, with their meaning and unit; each
      holds one JSON-ready value per example of the batch (``per="example"``), per pair whose
      source lies in the batch (``per="pair"``), or per item of a fixed probe set independent of the
      evaluated data (``per="probe"``: measured once per run, in the batch that starts at example 0;
      other batches do not call it), which :func:`invarbench.evaluation.measure.measure_batch`
      checks. ``MEASUREMENTS.add`` raises ValueError for a name already registered.
    - ``metrics``: the metric specs; ``aggregate(per_example, settings, suite)`` computes them (in
      that order) from the concatenation of all batches' stored values.
    - ``flags(per_example, suite)``: reliability flags read from the stored values (optional).
    - ``requires``: measurements that must be in the suite (and run first) for this one.
    - ``check(settings, suite_settings)``: cross-measurement validation (optional), raises ValueError.
    - ``summary(settings)``: the settings in a few words ("ε = 0.3, 40 steps"), for tables (optional).
    - ``cost(settings, suite, start, stop)``: the work it does on examples ``start:stop``, in
      forward+backward passes of one image (a forward pass counts 1/3), for the distributed schedule
      (:func:`invarbench.evaluation.distributed.batch_cost`); only an estimate, no number depends on it.
      None: no work beyond the clean pass.
    - ``figures(values, settings, metrics)``: the figures of a run's model page (:class:`FigureData`),
      from the run's merged per-example ``values`` (measurement -> field -> list), the suite
      ``settings`` it recorded for this measurement (a mapping) and its stored ``metrics`` (name ->
      value); None: no figures.
    - ``artifacts``: regular expressions that match every artifact name it stores (``BatchOutput.artifacts``),
      so that a reader finds its files without knowing their names.
    - ``docs``: ``(page, heading)`` of its method's documentation in ``docs/`` (the site links to it).
    - ``data_fields``: the fields computed from the data and the seed alone (no model), equal on every
      device; ``search``: its floats end an iterative search, so single rows may end far apart on another
      device (``results verify`` compares such fields by their median).
    """

    name: str
    description: str
    settings: type | None
    measure: Callable[[BatchContext, Any], BatchOutput]
    fields: Mapping[str, str]
    metrics: tuple[MetricSpec, ...] = ()
    aggregate: Callable[[PerExample, Any, Any], list[MetricValue]] | None = None
    flags: Callable[[PerExample, Any], list[str]] | None = None
    requires: tuple[str, ...] = ()
    check: Callable[[Any, Mapping[str, Any]], None] | None = None
    per: Literal["example", "pair", "probe"] = "example"
    summary: Callable[[Any], str] | None = None
    flag_docs: Mapping[str, str] = field(default_factory=dict)  # what each of its flags means, for a reader
    cost: Callable[[Any, Any, int, int], float] | None = None
    figures: Callable[[PerExample, Mapping[str, Any], Mapping[str, float]], list[FigureData]] | None = None
    artifacts: tuple[str, ...] = ()
    docs: tuple[str, str] | None = None
    data_fields: frozenset[str] = frozenset()
    search: bool = False

    def owns_artifact(self, name: str) -> bool:
        """Whether ``name`` is one of its artifacts' names (matches one of ``artifacts`` in full)."""
        return any(re.fullmatch(pattern, name) for pattern in self.artifacts)


def suite_fields(settings: type) -> list[dataclasses.Field]:
    """The fields of a settings dataclass that a suite sets (not those marked ``internal``)."""
    return [f for f in dataclasses.fields(settings) if not f.metadata.get("internal", False)]


def measurement_generators(generator: torch.Generator, names: list[str]) -> dict[str, torch.Generator]:
    """One generator per measurement, seeded from one draw of the batch's ``generator`` and the
    measurement's name (crc32), so adding or removing a measurement changes no other's numbers."""
    base = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return {
        name: torch.Generator(device=generator.device).manual_seed((base + zlib.crc32(name.encode())) % 2**63)
        for name in names
    }


def floats(t: torch.Tensor) -> list:
    """A tensor's values as float64 Python floats (JSON-ready, exact)."""
    return t.detach().cpu().double().tolist()
