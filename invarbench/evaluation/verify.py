"""``invarbench results verify``: re-run batches of a results file and compare them with its stored values.

A results file (:mod:`invarbench.store.documents`) carries every per-example value of its run, and its metrics
follow from them (the results door checks that, :mod:`invarbench.store.document_checks`). What no check of
the document alone can tell is whether those values are what the model computes. A run is deterministic per
batch: the values of examples ``start:stop`` depend only on the model, the suite, the run's seed, the batch's
position and the device (:func:`invarbench.evaluation.pipeline.measure_one`, the function every run, resumed
or distributed, computes a batch with). So this module re-runs some of the run's batches through that same
function, on the registered card's model, and compares value by value.

Which batches (:func:`batch_order`): always the run's first batch (it holds the examples of the reliability
checks and every pair-based measurement's pairs: NSPGD, path widths, and the probe sets measured once per
run), then the other batches in the order of the sha256 of ``"<seed>:<batch start>"``: a sample that depends
on nothing but the run's seed, so the same file is always checked on the same batches. ``--batches K``
takes the first K of that order; a K at least the number of batches checks every batch, and only that proves
the whole file: a sample catches a file whose values were made up or come from another model, not a single
edited batch that the sample leaves out.

How values compare (:func:`compare_batch`):

- **exactly** when the device class is the one that produced the run (:func:`same_device_class`: the same
  GPU model, torch version and model dtype as recorded): every value to the last bit (NaN equal to NaN);
- **within a tolerance** elsewhere (:data:`CROSS_DEVICE`). The CPU is always "elsewhere": a run records its
  device as ``cpu``, which does not say which kernels computed it, and two x86-64 AVX-512 machines with the
  same torch build give float32 logits that differ in the last bits (oneDNN chooses kernels per CPU model).
  Values that are equal still count as such: a file that reproduces bit for bit is reported as exact.
  And when a machine recomputes a batch's clean pass bit for bit (:func:`same_kernels`: every clean
  confidence equal to the last bit, which another CPU's kernels never gave), it runs the run's kernels: the
  comparison is then exact for every batch, so that a few edited values cannot hide inside the tolerance.
  The number of CPU threads is not recorded, and another number can change the last bits of iterated values
  (NSPGD's walks) on the same machine; a CPU batch that is not exact is re-run with 1 thread and with one
  per logical core (:func:`other_thread_counts`) and passes when one of them reproduces it exactly.

The tolerance, per kind of field (:func:`field_kind`, :data:`CROSS_DEVICE`), per batch and field:

- **data**: computed from the data set and the seed alone (the labels, the NSPGD pair plan:
  each measurement's declared ``data_fields``): equal on every device;
- **outcome** (booleans, strings, predictions: correct, robust, which attack broke an example, whether a
  walk kept its class): equal, except on at most 2 % of the rows (near a decision threshold a rounding
  difference may flip one);
- **step** (other whole numbers: the step at which an attack succeeded): equal, except on at most 10 %;
- **value** (floats of single-pass measurements: confidences): within ``rtol`` 1e-3 and ``atol`` 1e-5,
  except on at most 2 %;
- **search** (floats of the measurements that declare ``search``: FMN's and the boundary
  search's distances, NSPGD's walks, path widths): a row may end anywhere, since a rounding difference moves
  the search's path; over the batch, the median absolute relative difference must be at most 1e-2 and the
  median signed one at most 1e-3 in size (a systematic change of the values is not noise).

Shares are rounded down, so a batch of fewer than 50 rows has no outcome or value to spare. docs/store.md
gives the measurements behind these numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import statistics
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from invarbench.cards.catalog import CARD_SUFFIXES, CardRef, default_cards_dir, load_card
from invarbench.data import load_eval_data
from invarbench.errors import NotFoundError, ValidationError
from invarbench.evaluation.options import resolve_device
from invarbench.evaluation.pipeline import batch_grid, measure_one
from invarbench.evaluation.speed import Autocast, reproducible_float32
from invarbench.leaderboard_policy import FULL
from invarbench.leaderboard_policy import run_kind as _run_kind
from invarbench.measurements import MEASUREMENTS, PerExample
from invarbench.models.loading import load_model
from invarbench.progress import ProgressFactory, no_progress
from invarbench.store.codec import decode_floats
from invarbench.store.document_checks import check_document, read_results_file, shown
from invarbench.store.documents import ResultsDoc, parse_document
from invarbench.store.probes import device_name
from invarbench.suites.schema import Suite, load_suite

DEFAULT_BATCHES = 2
BF16_DTYPE = "bfloat16 (autocast)"  # the model_dtype a --precision bf16 run records


@dataclass(frozen=True)
class Tolerance:
    """How far recomputed values may be from the stored ones, per kind of field (see the module doc).

    ``exact``: every value equal to the last bit, nothing else counts. Otherwise: a float is close when
    ``|stored - recomputed| <= atol + rtol * |recomputed|``; per batch and field, the share of rows that are
    not close (or not equal, for whole numbers, booleans and strings) may be at most ``outcome_fraction``
    (booleans, strings, predictions), ``step_fraction`` (other whole numbers: the step an attack
    succeeded at) or ``value_fraction`` (floats of single-pass measurements); the floats of the iterative
    searches (measurements that declare ``search``) may differ row by row, but the median of their absolute relative
    differences over the batch may be at most ``search_median`` and the median of the signed ones at most
    ``search_bias`` in size. Shares are rounded down: a batch of fewer than ``1 / fraction`` rows has none to
    spare."""

    exact: bool
    rtol: float = 0.0
    atol: float = 0.0
    outcome_fraction: float = 0.0
    step_fraction: float = 0.0
    value_fraction: float = 0.0
    search_median: float = 0.0
    search_bias: float = 0.0

    @staticmethod
    def budget(fraction: float, rows: int) -> int:
        """How many of ``rows`` rows may diverge at ``fraction``."""
        return math.floor(fraction * rows + 1e-9)


# docs/store.md ("Verifying a results file") gives the measurements behind these numbers.
CROSS_DEVICE = Tolerance(
    exact=False,
    rtol=1e-3,
    atol=1e-5,
    outcome_fraction=0.02,
    step_fraction=0.10,
    value_fraction=0.02,
    search_median=1e-2,
    search_bias=1e-3,
)
EXACT = Tolerance(exact=True)
# Whole-number fields that are outcomes, not step counts.
OUTCOME_INTEGERS: Mapping[str, frozenset[str]] = {"clean": frozenset({"pred"})}


class _Text(str):
    """Words in place of a value in a :class:`Mismatch` ("3 values", "absent"): shown without quotes."""

    def __repr__(self) -> str:
        return str(self)


@dataclass(frozen=True)
class Mismatch:
    """The first stored value that the recomputation does not reproduce.

    ``batch``: the batch's number in the run (0 = examples ``0:batch_size``); ``what``/``index``: the row, as
    ``"example"`` and the example's number in the run, or ``"pair"`` and the pair's number, or ``"item"`` and
    the probe item's row; ``field``: ``measurement.field`` (with ``[i][j]`` for a value inside a nested
    list); ``stored``/``recomputed``: the two values (None where the field or the row is absent on one side);
    ``note``: why it is a mismatch when not plainly a different value."""

    batch: int
    what: str
    index: int | None
    field: str
    stored: Any
    recomputed: Any
    note: str = ""

    def line(self) -> str:
        where = f"batch {self.batch}" + (f", {self.what} {self.index}" if self.index is not None else "")
        tail = f" ({self.note})" if self.note else ""
        return f"{where}, field {self.field}: stored {shown(self.stored)}, recomputed {shown(self.recomputed)}{tail}"


@dataclass
class Comparison:
    """What comparing stored and recomputed batches found: the first :class:`Mismatch` (None: they agree
    within the tolerance), how many values differ at all, the largest relative difference of a float
    (and where), and how many values lay beyond the per-value tolerance (``rtol``/``atol``, or not equal)
    within the budgets that :class:`Tolerance` allows."""

    mismatch: Mismatch | None = None
    values_compared: int = 0
    values_differing: int = 0
    largest_relative: float = 0.0
    largest_at: str = ""
    values_beyond: int = 0

    @property
    def exact(self) -> bool:
        return self.mismatch is None and self.values_differing == 0


@dataclass(frozen=True)
class Verdict:
    """The result of verifying one results file: the batches re-run (start, stop), the devices, whether the
    comparison had to be exact, and what it found."""

    source: str
    card_id: str
    batches: list[tuple[int, int]]
    total_batches: int
    device_here: str
    device_recorded: str
    exact_required: bool
    comparison: Comparison = field(default_factory=Comparison)

    @property
    def ok(self) -> bool:
        return self.comparison.mismatch is None

    def examples_text(self) -> str:
        return ", ".join(f"{start}..{stop - 1}" for start, stop in self.batches)

    def line(self) -> str:
        """``OK <file>: ...`` or ``MISMATCH <file>: ...``: one line for the command's output."""
        c = self.comparison
        if c.mismatch is not None:
            return f"MISMATCH {self.source}: {c.mismatch.line()}"
        k = len(self.batches)
        head = f"OK {self.source}: {k} batch{'es' if k != 1 else ''} (examples {self.examples_text()})"
        if c.exact:
            return f"{head} reproduce exactly"
        largest = f", the largest relative difference {c.largest_relative:.1e} ({c.largest_at})" if c.largest_at else ""
        return (
            f"{head} reproduce within tolerance (compared as another device class: here {self.device_here}, "
            f"recorded {self.device_recorded}): {c.values_differing} of {c.values_compared} values differ"
            f"{largest}, {c.values_beyond} beyond the per-value tolerance"
        )


# --- which batches ---------------------------------------------------------------------------------------
def batch_order(starts: Iterable[int], seed: int) -> list[int]:
    """The batch starts in the order they are verified: the first batch (the smallest start), then the
    others sorted by the sha256 of ``"<seed>:<start>"`` (hex). Depends only on the starts and the seed."""
    starts = sorted(set(starts))
    if not starts:
        return []
    first, rest = starts[0], starts[1:]
    return [first, *sorted(rest, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())]


def select_batches(grid: Mapping[int, int], seed: int, k: int) -> list[tuple[int, int]]:
    """The first ``k`` batches of :func:`batch_order` as (start, stop), in run order. Raises
    :class:`ValidationError` for ``k`` below 1."""
    if k < 1:
        raise ValidationError(f"--batches must be at least 1, got {k}")
    chosen = batch_order(grid, seed)[:k]
    return [(start, grid[start]) for start in sorted(chosen)]


# --- how values compare ----------------------------------------------------------------------------------
def same_device_class(
    recorded_device: str, recorded_torch: str, recorded_dtype: str | None, here_device: str, here_dtype: str
) -> bool:
    """Whether values computed here must equal those recorded to the last bit: the same GPU model (the
    recorded device is ``cuda:<name>``, and no ``torch.compile``), torch version and model dtype. A CPU is
    never known to be the same class (see the module doc)."""
    return (
        recorded_device.startswith("cuda:")
        and recorded_device == here_device
        and recorded_torch == torch.__version__
        and (recorded_dtype or "float32") == here_dtype
    )


def other_thread_counts() -> list[int]:
    """The numbers of CPU threads, other than torch's current one, that ``verify`` also tries on a CPU: 1 and
    one per logical core (``os.cpu_count()``). A run made with ``OMP_NUM_THREADS=1`` and one made with a
    thread per core can differ in the last bits of iterated values on the same machine."""
    default = os.cpu_count() or 1
    return [t for t in dict.fromkeys((1, default)) if t != torch.get_num_threads()]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(n)``, restoring the previous number after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def same_kernels(stored: PerExample, recomputed: PerExample) -> bool:
    """Whether a batch's recomputed clean pass equals the stored one bit for bit: every confidence of
    ``clean`` (float, one per example) equal to the last bit. Another CPU or GPU kernel rounds at least some
    of them differently (seen on every pair of machines tried), so equality means this machine reproduces the
    run's kernels and its values can be compared exactly; :func:`verify_document` then requires that."""
    a = (stored.get("clean") or {}).get("confidence")
    b = (recomputed.get("clean") or {}).get("confidence")
    return bool(a) and a is not None and b is not None and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))


def _equal(a: Any, b: Any) -> bool:
    """Bit-for-bit equality of two JSON-ready values: the same type of leaf (a boolean is not a number),
    NaN equal to NaN, 0.0 not equal to -0.0; lists element by element."""
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and isinstance(b, float):
            if math.isnan(a) or math.isnan(b):
                return math.isnan(a) and math.isnan(b)
            return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
        return type(a) is type(b) and a == b
    return a == b


def _leaves(value: Any) -> Iterable[Any]:
    if isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _close(a: Any, b: Any, tol: Tolerance) -> bool:
    """Equal (:func:`_equal`), or two finite floats within ``tol``; nested lists element by element."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if _equal(a, b):
        return True
    if tol.exact or not (type(a) is float and type(b) is float and math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= tol.atol + tol.rtol * abs(b)


def _first_difference(a: Any, b: Any, tol: Tolerance, path: str = "") -> tuple[str, Any, Any] | None:
    """Where ``a`` (stored) and ``b`` (recomputed) differ beyond ``tol``: (index path, stored leaf,
    recomputed leaf), or None."""
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return path, _Text(f"{len(a)} values"), _Text(f"{len(b)} values")
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, tol, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    return None if _close(a, b, tol) else (path, a, b)


def _relative(a: Any, b: Any) -> Iterable[float]:
    """The signed relative difference ``(a - b) / max(|a|, |b|)`` of every pair of finite floats in ``a`` and
    ``b`` (same shape; 0 for equal values)."""
    if isinstance(a, list) and isinstance(b, list):
        for x, y in zip(a, b):
            yield from _relative(x, y)
    elif type(a) is float and type(b) is float and math.isfinite(a) and math.isfinite(b):
        yield 0.0 if a == b else (a - b) / max(abs(a), abs(b))


def field_kind(measurement: str, field: str, values: list) -> str:
    """The kind of a field, for the tolerance: ``data`` (a field the measurement declares among its
    ``data_fields``, computed from the data and the seed alone), ``search`` (floats of a measurement that
    declares ``search``: the end of an iterative search, which a rounding difference moves), ``value``
    (other floats), ``step`` (whole numbers but predictions) or ``outcome`` (booleans, strings,
    predictions). ``values``: the field's values (the first leaf that is not None decides)."""
    declared = MEASUREMENTS.get(measurement) if measurement in MEASUREMENTS else None
    if declared is not None and field in declared.data_fields:
        return "data"
    leaf = next((v for v in _leaves(values) if v is not None), None)
    if type(leaf) is float:
        return "search" if declared is not None and declared.search else "value"
    if type(leaf) is int and field not in OUTCOME_INTEGERS.get(measurement, ()):
        return "step"
    return "outcome"


def _row_label(per: str, start: int, row: int, fields: Mapping[str, list]) -> tuple[str, int]:
    if per == "example":
        return "example", start + row
    if per == "pair":
        pair = fields.get("pair")
        return "pair", pair[row] if pair is not None and row < len(pair) and type(pair[row]) is int else row
    return "item", row


def compare_batch(
    stored: PerExample,
    recomputed: PerExample,
    *,
    batch: int,
    start: int,
    tolerance: Tolerance,
    into: Comparison,
) -> Comparison:
    """Compare one batch's stored per-example values with the recomputed ones, measurement by measurement,
    field by field (the measurement's order), row by row (see :class:`Tolerance`), adding to ``into`` and
    returning it; stops at the first mismatch.

    ``stored``/``recomputed``: measurement -> field -> list of values (floats decoded); ``batch``: its number
    in the run; ``start``: its first example. With :data:`EXACT` the first difference is the mismatch."""
    for name in sorted(set(stored) | set(recomputed)):
        if name not in stored or name not in recomputed:
            values = _Text(f"{len(next(iter((stored.get(name) or recomputed[name]).values()), []))} values")
            absent = _Text("absent")
            into.mismatch = Mismatch(
                batch,
                "example",
                None,
                name,
                values if name in stored else absent,
                values if name in recomputed else absent,
                note="the suite " + ("does not run this measurement here" if name in stored else "runs it"),
            )
            return into
        s, r = stored[name], recomputed[name]
        m = MEASUREMENTS.get(name) if name in MEASUREMENTS else None
        per = m.per if m is not None else "example"
        for key in sorted(set(s) | set(r)):
            if key not in s or key not in r:
                stored_n, again_n = (_Text(f"{len(v[key])} values") if key in v else _Text("absent") for v in (s, r))
                into.mismatch = Mismatch(batch, per, None, f"{name}.{key}", stored_n, again_n)
                return into
            if len(s[key]) != len(r[key]):
                stored_n, again_n = _Text(f"{len(s[key])} values"), _Text(f"{len(r[key])} values")
                into.mismatch = Mismatch(batch, per, None, f"{name}.{key}", stored_n, again_n)
                return into
        for key in r:  # the measurement's declared order
            found = _compare_field(name, key, s, r, per, batch, start, tolerance, into)
            if found is not None:
                into.mismatch = found
                return into
    return into


def _compare_field(
    name: str,
    key: str,
    s: Mapping[str, list],
    r: Mapping[str, list],
    per: str,
    batch: int,
    start: int,
    tol: Tolerance,
    into: Comparison,
) -> Mismatch | None:
    """One field of one batch: the mismatch, or None (counting into ``into``)."""
    stored, again = s[key], r[key]
    kind = "exact" if tol.exact else field_kind(name, key, again)
    rows = len(again)
    divergent: list[Mismatch] = []
    signed: list[float] = []
    for row, (a, b) in enumerate(zip(stored, again)):
        into.values_compared += 1
        if _equal(a, b):
            signed.extend(_relative(a, b))
            continue
        into.values_differing += 1
        rel = list(_relative(a, b))
        signed.extend(rel)
        for x in rel:
            if abs(x) > into.largest_relative:
                into.largest_relative, into.largest_at = abs(x), f"{name}.{key}"
        found = _first_difference(a, b, EXACT if kind in ("exact", "data") else tol)
        if found is None:
            continue
        what, index = _row_label(per, start, row, s)
        path, x, y = found
        mismatch = Mismatch(batch, what, index, f"{name}.{key}{path}", x, y)
        if kind == "exact":
            return mismatch
        if kind == "data":
            return Mismatch(
                **{**mismatch.__dict__, "note": "computed from the data and the seed alone: equal on every device"}
            )
        divergent.append(mismatch)
    if kind in ("exact", "data"):
        return None
    if kind == "search":
        if signed:
            typical = statistics.median(abs(x) for x in signed)
            bias = statistics.median(signed)
            if typical > tol.search_median or abs(bias) > tol.search_bias:
                first = divergent[0] if divergent else None
                note = (
                    f"over the batch's {len(signed)} values of {name}.{key} the median relative difference is "
                    f"{typical:.1e} and its signed median {bias:.1e}; the tolerance for a search's results is "
                    f"{tol.search_median:.0e} and {tol.search_bias:.0e}"
                )
                if first is None:
                    return Mismatch(batch, per, None, f"{name}.{key}", _Text("values"), _Text("values"), note=note)
                return Mismatch(**{**first.__dict__, "note": note})
        into.values_beyond += len(divergent)
        return None
    fraction = {"outcome": tol.outcome_fraction, "step": tol.step_fraction, "value": tol.value_fraction}[kind]
    budget = Tolerance.budget(fraction, rows)
    if len(divergent) > budget:
        plural = {"example": "examples", "pair": "pairs"}.get(per, "items")
        note = (
            f"{len(divergent)} of {rows} {plural} differ in {name}.{key} in this batch, beyond the tolerance for "
            f"another device class ({kind}: at most {budget})"
        )
        return Mismatch(**{**divergent[0].__dict__, "note": note})
    into.values_beyond += len(divergent)
    return None


# --- verifying a file -------------------------------------------------------------------------------------
def read_document(path: Path) -> ResultsDoc:
    """Read one results file through the results door (strict JSON, schema and digest, names, card, metric
    specs, metrics following from the values). Raises :class:`ValidationError` or :class:`NotFoundError`,
    one line naming the file; a file holding a list of documents (``results export`` to standard output) is
    refused: verify reads the files under ``leaderboard/results/``, one run each."""
    if not path.is_file():
        raise NotFoundError(f"{path} does not exist (or is not a file)")
    data = read_results_file(path)
    if isinstance(data, list):
        raise ValidationError(
            f"{path} holds a list of {len(data)} documents: verify one run per file (export them with "
            "'invarbench results export --out FOLDER')"
        )
    doc = parse_document(data, str(path))
    check_document(doc, str(path))
    return doc


def registered_card(doc: ResultsDoc, source: str, cards_dir: Path | None) -> CardRef:
    """The registered card the document names, which must be the one it was made with (the same sha256).
    Raises :class:`NotFoundError` for a card that is not registered, :class:`ValidationError` when its
    sha256 differs from the document's ``model.card_sha256``."""
    root = cards_dir or default_cards_dir()
    dataset, _, name = doc.model.card_id.partition("/")
    # Never a path the document names: the id's place in the cards folder.
    places = [root / dataset / f"{name}{suffix}" for suffix in CARD_SUFFIXES]
    path = next((p for p in places if p.is_file()), places[0])
    if not path.is_file():
        raise NotFoundError(
            f"{source}: model card {doc.model.card_id} is not registered (no {path}): verify re-runs the "
            "registered card's model; add the card, or pass --cards-dir"
        )
    ref = load_card(path, check_location=True, cards_dir=root)
    if ref.sha256 != doc.model.card_sha256:
        raise ValidationError(
            f"{source}: the registered card {doc.model.card_id} ({ref.path}) has sha256 {ref.sha256[:12]}…, the "
            f"results file's model snapshot {doc.model.card_sha256[:12]}…: the card changed since the run; "
            "re-evaluate the model and export its results again"
        )
    return ref


def registered_suite(doc: ResultsDoc, source: str) -> Suite:
    """The packaged suite the run was measured with: the same name, version and settings hash as the
    document records. Raises :class:`ValidationError` naming what differs."""
    run = doc.run
    try:
        suite = load_suite(run.suite_name, run.dataset)
    except NotFoundError:
        raise ValidationError(
            f"{source}: this invarbench has no suite {run.suite_name} for {run.dataset}, so the run cannot be re-run"
        ) from None
    if suite.version != run.suite_version:
        raise ValidationError(
            f"{source}: the run was measured with {run.suite_name} v{run.suite_version}, this invarbench has "
            f"v{suite.version} for {run.dataset}: verify it with the invarbench of its run (git commit "
            f"{run.git_commit or 'not recorded'}), or re-evaluate with the current suite"
        )
    if run.suite_settings_hash is not None and run.suite_settings_hash != suite.settings_hash():
        raise ValidationError(
            f"{source}: run.suite_settings_hash {run.suite_settings_hash[:12]}… is not the hash of the registered "
            f"{suite.name} v{suite.version} for {suite.dataset} ({suite.settings_hash()[:12]}…): the run was "
            "not measured with the registered suite"
        )
    return suite


def stored_batches(doc: ResultsDoc) -> dict[int, PerExample]:
    """The document's per-example values by batch start: start -> measurement -> field -> values."""
    out: dict[int, PerExample] = {}
    for e in doc.examples:
        out.setdefault(e.batch_start, {})[e.measurement] = decode_floats(e.values)
    return out


def ranked_kind(run: Any) -> str:
    """How the results file's run stands (:func:`invarbench.leaderboard_policy.run_kind`), from its recorded fields."""
    return _run_kind(run.dataset, run.data_source, run.data_digest, run.examples_effective, run.suite_num_examples)


def verify_document(
    doc: ResultsDoc,
    source: str,
    *,
    batches: int = DEFAULT_BATCHES,
    device: str = "auto",
    cards_dir: Path | None = None,
    data_dir: Path | None = None,
    progress: ProgressFactory = no_progress,
) -> Verdict:
    """Re-run ``batches`` batches of the run in ``doc`` (:func:`select_batches`) on the registered card's
    model and compare them with the stored values (:func:`compare_batch`).

    ``device``: ``auto``, ``cpu`` or ``cuda``, as for ``eval``. The run's own settings are used: its
    suite (which must be the registered one, :func:`registered_suite`), seed, batch size, examples and
    precision (a ``--precision bf16`` run is re-run under the same autocast; ``torch.compile`` is not
    repeated: such a run is compared within the tolerance). Returns a :class:`Verdict`; raises
    :class:`ValidationError`/:class:`NotFoundError` with one line naming ``source`` when the run cannot be
    re-run here (another card, suite or data, custom data), and :class:`ModelOutputError` as ``eval`` does."""
    run = doc.run
    if run.data_source is not None and ranked_kind(run) != FULL:
        raise ValidationError(
            f"{source}: the run evaluated custom data ({run.data_source.split(' ')[0]}), which a results file "
            "does not carry: verify re-runs runs on a registered data set only"
        )
    # A ranked run read from an .npz copy of the test split's first images (its data digest is the split's):
    # re-run on the data set's own files, whose digest is checked below.
    suite = registered_suite(doc, source)
    ref = registered_card(doc, source, cards_dir)
    here = resolve_device(device)
    data = load_eval_data(run.dataset, data_dir=data_dir, limit=run.examples_requested)
    if len(data) != run.examples_effective:
        raise ValidationError(
            f"{source}: the run evaluated {run.examples_effective} examples of {run.dataset}, this data set gives "
            f"{len(data)} for {run.examples_requested} requested"
        )
    if run.data_digest is not None and run.data_digest != data.digest:
        raise ValidationError(
            f"{source}: run.data_digest {run.data_digest} is not that of the {run.dataset} examples here "
            f"({data.digest}): the run evaluated other images"
        )
    grid = batch_grid(len(data), run.batch_size)
    stored = stored_batches(doc)
    unexpected = sorted(set(stored) - set(grid))
    if unexpected:
        raise ValidationError(
            f"{source}: examples stored from {unexpected[0]} do not start a batch of {run.batch_size} "
            f"(run.batch_size) over {len(data)} examples"
        )
    chosen = select_batches(grid, run.seed, batches)
    missing = [start for start, _ in chosen if start not in stored]
    if missing:
        raise ValidationError(f"{source}: no per-example values stored for the batch from example {missing[0]}")

    with reproducible_float32(here):  # as the runner loads it
        model = load_model(ref, here).wrapper
    here_dtype = str(model.compute_dtype).removeprefix("torch.")
    net: torch.nn.Module = model
    if run.model_dtype == BF16_DTYPE:
        if here.type == "cuda":
            model.model.to(memory_format=torch.channels_last)  # as eval --precision bf16 does
        net, here_dtype = Autocast(model, here.type), BF16_DTYPE
    if here.type == "cuda":
        data = dataclasses.replace(data, x=data.x.to(here), y=data.y.to(here))  # as the runner: on the GPU once
    exact = same_device_class(run.device, run.torch_version, run.model_dtype, device_name(here), here_dtype)
    verdict = Verdict(
        source=source,
        card_id=doc.model.card_id,
        batches=chosen,
        total_batches=len(grid),
        device_here=device_name(here),
        device_recorded=run.device,
        exact_required=exact,
    )
    advance = progress(f"{doc.model.card_id} · {suite.name} v{suite.version}", sum(e - s for s, e in chosen))
    numbers = {start: i for i, start in enumerate(sorted(grid))}

    def note(s: int, e: int, what: str) -> None:
        advance(0, f"{s}-{e}: {what}")

    with reproducible_float32(here):  # as the runner computes: IEEE float32 on a GPU too
        for start, stop in chosen:
            again = measure_one(net, data, suite, seed=run.seed, start=start, stop=stop, device=here, note=note)
            if not exact and same_kernels(stored[start], again.values):
                # This machine computes the recorded clean pass bit for bit: it runs the run's kernels, so every
                # value must reproduce exactly (a tolerance here would let a few edited values through).
                exact = True
                verdict = dataclasses.replace(verdict, exact_required=True)
            before = dataclasses.replace(verdict.comparison)
            compare_batch(
                stored[start],
                again.values,
                batch=numbers[start],
                start=start,
                tolerance=EXACT if exact else CROSS_DEVICE,
                into=verdict.comparison,
            )
            if verdict.comparison.mismatch is not None and exact and here.type == "cpu":
                # The run's provenance does not record its number of CPU threads, and another number can round the
                # last bits of iterated values (the NSPGD walks) differently while the clean pass agrees: the
                # batch counts as reproduced when it does so exactly with one of the other usual numbers.
                for threads in other_thread_counts():
                    with torch_threads(threads):
                        again = measure_one(
                            net, data, suite, seed=run.seed, start=start, stop=stop, device=here, note=note
                        )
                    retry = dataclasses.replace(before)
                    compare_batch(
                        stored[start], again.values, batch=numbers[start], start=start, tolerance=EXACT, into=retry
                    )
                    if retry.mismatch is None:
                        verdict = dataclasses.replace(verdict, comparison=retry)
                        break
            advance(stop - start)
            if verdict.comparison.mismatch is not None:
                break
    return verdict


def verify_file(path: Path, **options: Any) -> Verdict:
    """:func:`read_document`, then :func:`verify_document` with ``options``."""
    return verify_document(read_document(path), str(path), **options)
