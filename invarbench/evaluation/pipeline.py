"""A suite on a model, as a pure generator of batch results: no store, no printing.

:func:`run_suite` yields one :class:`BatchResult` per batch of ``batch_size`` examples, in order.
Batches found in ``stored`` (an earlier attempt's, read back from the store) are yielded as they
are, not recomputed; every other batch is measured with its own generator, seeded by
:func:`batch_seed` from the seed and the batch's first example, so a batch's numbers depend only on
the model, the suite, the seed, the batch's position and the device. :func:`finish_suite` merges
the batches and computes the metrics and the flags. The runner (:mod:`invarbench.evaluation.runner`)
drives it and hands each batch to a sink (:mod:`invarbench.evaluation.sinks`) that stores it, or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from invarbench.data.registry import EvalData
from invarbench.errors import ModelOutputError, ValidationError
from invarbench.evaluation.measure import measure_batch, merge_batches, reliability_flags
from invarbench.evaluation.memory import MemoryPlan
from invarbench.evaluation.options import check_batch_size
from invarbench.measurements import PerExample, aggregate, result_flags
from invarbench.metrics.stats import MetricValue

BatchNote = Callable[[int, int, str], None]  # (start, stop, what runs now)


def batch_seed(seed: int, batch_start: int) -> int:
    """Each batch draws from its own generator, so a batch's numbers depend only on its position."""
    return (seed * 1_000_003 + batch_start) % (2**63)


@dataclass(frozen=True)
class BatchResult:
    """Examples ``start:stop``: the per-example values of every measurement (``values``), whether
    they were ``computed`` now (False: read back from ``stored``), and the files the measurements
    made for the batch (``artifacts``: name -> bytes; empty for a stored batch, whose files are
    stored already)."""

    start: int
    stop: int
    values: PerExample
    computed: bool
    artifacts: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class SuiteResult:
    """A finished suite: its metrics (registry order), its flags (the checks', then those read from
    the values), and the merged per-example values."""

    metrics: list[MetricValue]
    flags: list[str]
    per_example: PerExample


def check_model(model: nn.Module, data: EvalData, suite, *, seed: int, device: torch.device) -> list[str]:
    """The reliability checks' flags, on the suite's first ``checks.examples`` examples. Raises
    :class:`ModelOutputError` when the model's logits are not finite or its forward raises."""
    try:
        return reliability_flags(model, data, suite, torch.Generator(device=device).manual_seed(seed), device)
    except ModelOutputError as exc:
        raise ModelOutputError(f"{exc} (during the reliability checks)") from None


def run_suite(
    model: nn.Module,
    data: EvalData,
    suite,  # a Suite
    *,
    seed: int,
    batch_size: int,
    device: torch.device,
    stored: Mapping[int, PerExample] | None = None,
    note: BatchNote | None = None,
    memory: MemoryPlan | None = None,
) -> Iterator[BatchResult]:
    """Measure ``data`` with ``suite`` batch by batch (see the module doc); ``model`` must already be
    on ``device``. ``memory`` (``--batch-size auto``): how many images the model is given at once,
    per measurement (:mod:`invarbench.evaluation.memory`). Raises :class:`OptionError` for a
    batch size below 1, :class:`ValidationError` for stored batches that do not start at a multiple
    of it, and whatever a measurement raises (``ModelOutputError`` on NaN logits, ``OutOfMemory``)."""
    stored = dict(stored or {})
    grid = stored_fit(batch_grid(len(data), batch_size), stored, batch_size)
    for start, stop in grid.items():
        if start in stored:
            yield BatchResult(start, stop, stored[start], computed=False)
            continue
        yield measure_one(
            model, data, suite, seed=seed, start=start, stop=stop, device=device, note=note, memory=memory
        )


def batch_grid(examples: int, batch_size: int) -> dict[int, int]:
    """The batches of a run, start -> stop: ``batch_size`` examples each (the last may be shorter).
    The grid depends on the examples and the batch size only, never on the number of processes.
    Raises :class:`OptionError` (``batch_size``) for a batch size below 1."""
    check_batch_size(batch_size)
    return {start: min(start + batch_size, examples) for start in range(0, examples, batch_size)}


def stored_fit(grid: dict[int, int], stored: Mapping[int, object], batch_size: int) -> dict[int, int]:
    """``grid`` (from :func:`batch_grid`), once every batch in ``stored`` is found to start on it.
    Raises :class:`ValidationError` for a stored batch that does not (another batch size stored it)."""
    unexpected = sorted(set(stored) - set(grid))
    if unexpected:
        raise ValidationError(f"stored batches at examples {unexpected} do not fit batch size {batch_size}")
    return grid


def measure_one(
    model: nn.Module,
    data: EvalData,
    suite,  # a Suite
    *,
    seed: int,
    start: int,
    stop: int,
    device: torch.device,
    note: BatchNote | None = None,
    memory: MemoryPlan | None = None,
) -> BatchResult:
    """Examples ``start:stop`` measured with their own generator (seeded by :func:`batch_seed`): the
    same values whichever process computes them, and whatever batches came before."""
    gen = torch.Generator(device=device).manual_seed(batch_seed(seed, start))
    told = None if note is None else (lambda what: note(start, stop, what))
    values, artifacts = measure_batch(model, data, start, stop, suite, gen, note=told, device=device, memory=memory)
    return BatchResult(start, stop, values, computed=True, artifacts=artifacts)


def finish_suite(batches: Iterable[PerExample], suite, check_flags: list[str]) -> SuiteResult:
    """Merge the batches (in order), compute the metrics, and add the flags read from the values."""
    per_example = merge_batches(batches)
    return SuiteResult(
        metrics=aggregate(per_example, suite),
        flags=[*check_flags, *result_flags(per_example, suite)],
        per_example=per_example,
    )
