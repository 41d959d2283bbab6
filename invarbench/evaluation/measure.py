"""A suite's measurements on one batch, and their aggregation: pure computation, no I/O.

Every measurement comes from the registry (:mod:`invarbench.measurements`); this module only
runs them in order. The contract with the runner (which stores, resumes and reports progress):

- ``reliability_flags(model, data, suite, generator, device)`` runs once before the batches and
  returns the flags of the model (NaN/Inf logits raise instead);
- ``measure_batch(model, data, start, stop, suite, generator, note=None, device=None)`` returns,
  per measurement, the per-example (or per-pair) values of examples ``start:stop`` of ``data``
  as JSON-ready lists (the fields each measurement declares), and the batch's files (NSPGD's
  image strips), stored with the batch. It depends only on its arguments, so a resumed run
  recomputes nothing and changes nothing. ``note`` (optional) hears what it is working on, step
  by step;
- ``aggregate(per_example, suite)`` turns the concatenation of all batches' values into the
  metrics, and ``result_flags(per_example, suite)`` into the flags read from them.

Randomness: every measurement draws from its own generator, seeded from one draw of the batch's
generator and the measurement's name, so adding or removing a measurement in a suite changes no
other measurement's numbers. The NSPGD pairs depend only on the suite's seed and the evaluated
labels (:func:`invarbench.measurements.nspgd.pair_plan`).

Every logit a measurement uses must be finite: the model wrapper counts the inputs with
NaN/Inf logits on every forward pass, and each measurement's count is checked when it ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from invarbench.attacks import check_finite_logits
from invarbench.attacks.checks import reliability_flags as _check_flags
from invarbench.data.registry import EvalData
from invarbench.errors import ModelOutputError
from invarbench.evaluation.memory import MemoryPlan
from invarbench.measurements import (
    ALWAYS as _ALWAYS,
)
from invarbench.measurements import (
    MEASUREMENTS,
    BatchContext,
    BatchOutput,
    PerExample,
    measurement_generators,
)
from invarbench.progress import Note

# The measurements whose random streams a batch seeds (kept as they were: a stream's seed depends
# only on the batch's generator and the measurement's name).


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU when it has none)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _trusted(model: nn.Module):  # a context manager
    """The wrapper's range check is skipped inside attacks, which clip their own iterates."""
    trusted = getattr(model, "trusted_inputs", None)
    return trusted() if trusted is not None else contextlib.nullcontext()


@contextlib.contextmanager
def _finite_logits(model: nn.Module, measurement: str, start: int, stop: int) -> Iterator[None]:
    """Raise :class:`ModelOutputError` when the model gave NaN/Inf logits during a measurement, also
    when the measurement then failed on them (the NaN is the cause to report): NaN logits read as
    class 0 in an argmax and would make examples "robust" that are not. Models without the
    wrapper's counter are not watched."""
    reset = getattr(model, "reset_nonfinite", None)
    if reset is None:
        yield
        return
    reset()
    try:
        yield
    except Exception as exc:
        count = model.nonfinite_count()
        if count:
            raise _nonfinite_error(measurement, count, start, stop) from None
        if isinstance(exc, ModelOutputError):  # e.g. the model's own forward raised: say where
            raise ModelOutputError(f"{exc} during {measurement} (examples {start}-{stop - 1})") from None
        raise
    count = model.nonfinite_count()
    if count:
        raise _nonfinite_error(measurement, count, start, stop)


def _nonfinite_error(measurement: str, count: int, start: int, stop: int) -> ModelOutputError:
    return ModelOutputError(
        f"the model returned NaN or Inf logits for {count} input(s) during {measurement} "
        f"(examples {start}-{stop - 1}), "
        "so its numbers cannot be computed: make the model's logits finite for every input in [0, 1] "
        "(e.g. clamp before a log or a division)"
    )


def reliability_flags(
    model: nn.Module,
    data: EvalData,
    suite,
    generator: torch.Generator,
    device: torch.device | None = None,
) -> list[str]:
    """Flags that make the model's numbers untrustworthy as they stand (docs/measurements.md)."""
    cfg = suite.checks
    device = model_device(model) if device is None else device
    x = data.x[: cfg.examples].to(device)
    y = data.y[: cfg.examples].to(device)
    return _check_flags(model, x, y, cfg, generator=generator)


def measure_batch(
    model: nn.Module,
    data: EvalData,
    start: int,
    stop: int,
    suite,
    generator: torch.Generator,
    note: Note | None = None,
    device: torch.device | None = None,
    memory: MemoryPlan | None = None,
) -> tuple[PerExample, dict[str, bytes]]:
    """Every per-example value the suite keeps for examples ``start:stop``, keyed by measurement, and the
    files the measurements made for the batch (artifact name -> bytes, e.g. NSPGD's image strips), which
    are stored with the run.

    ``note``, when given, is told what runs now ("pgd_l2 step 12/40 (57 left)", ...). Raises
    :class:`ModelOutputError` on NaN/Inf logits, naming the measurement and the count. With ``memory``
    (``--batch-size auto``), the model is given at most the plan's number of images at once per
    measurement, and a measurement that runs out of memory is run again with fewer
    (:mod:`invarbench.evaluation.memory`): the values are the same."""
    device = model_device(model) if device is None else device
    names = [m.name for m in MEASUREMENTS.in_order() if m.name == _ALWAYS or m.name in suite.measurements]
    gens = measurement_generators(generator, names)
    x = data.x[start:stop].to(device, non_blocking=True)
    y = data.y[start:stop].to(device, non_blocking=True)

    def clean(net: nn.Module) -> torch.Tensor:
        with _finite_logits(net, "the clean forward pass", start, stop), torch.no_grad():
            return net(x)

    logits = clean(model) if memory is None else memory.run("clean", model, clean, lambda: None)
    check_finite_logits(logits)
    pred = torch.softmax(logits.double(), dim=1).max(dim=1).indices
    results: dict[str, BatchOutput] = {}
    for name in names:
        m = MEASUREMENTS.get(name)
        if m.per == "probe" and start != 0:
            continue  # a fixed probe set: measured once per run, in the first batch
        ctx = BatchContext(
            model=model,
            data=data,
            start=start,
            stop=stop,
            x=x,
            y=y,
            logits=logits,
            pred=pred,
            correct=pred == y,
            device=device,
            suite=suite,
            generator=gens[name],
            results=results,
            note=note,
        )
        if memory is None:
            results[name] = _measure(m, ctx)
        else:
            state = gens[name].get_state()
            results[name] = memory.run(
                name,
                model,
                lambda net, m=m, ctx=ctx: _measure(m, dataclasses.replace(ctx, model=net)),
                lambda gen=gens[name], state=state: gen.set_state(state),
            )
        _check_fields(m, results[name].fields, stop - start)
    artifacts: dict[str, bytes] = {}
    for name, out in results.items():
        clash = sorted(set(out.artifacts) & set(artifacts))
        if clash:
            raise RuntimeError(f"measurement {name} returned artifact {clash[0]!r}, which another measurement made")
        artifacts.update(out.artifacts)
    return {name: out.fields for name, out in results.items() if out.fields}, artifacts


def _measure(m, ctx: BatchContext) -> BatchOutput:  # a Measurement
    """One measurement on one batch, watched for NaN/Inf logits (the clean pass has its own watch)."""
    settings = ctx.suite.measurements.get(m.name)
    if m.name == _ALWAYS:
        return m.measure(ctx, settings)
    with _trusted(ctx.model), _finite_logits(ctx.model, m.name, ctx.start, ctx.stop):
        return m.measure(ctx, settings)


def _check_fields(m, fields: dict[str, list], batch: int) -> None:  # a Measurement
    """A measurement returns the fields it declares, one value per example of the batch (``per="example"``)
    or one per pair or probe item, the same number in every field (``per="pair"``, ``"probe"``): anything
    else would be aggregated over the wrong examples. Raises RuntimeError (a bug in the measurement, not
    the user's input)."""
    if not fields:
        return
    undeclared = sorted(set(fields) - set(m.fields))
    lengths = {key: len(values) for key, values in fields.items()}
    wrong = (
        {k: n for k, n in lengths.items() if n != batch}
        if m.per == "example"
        else (lengths if len(set(lengths.values())) > 1 else {})
    )
    if undeclared or wrong:
        raise RuntimeError(
            f"measurement {m.name} returned {f'undeclared fields {undeclared}' if undeclared else ''}"
            f"{' and ' if undeclared and wrong else ''}"
            f"{f'fields of the wrong length {wrong} (batch of {batch}, per {m.per})' if wrong else ''}"
        )


def merge_batches(batches: Iterable[PerExample]) -> PerExample:
    """The per-example values of consecutive batches, concatenated field by field, in order."""
    merged: PerExample = {}
    for values in batches:
        for measurement, fields in values.items():
            into = merged.setdefault(measurement, {})
            for key, vals in fields.items():
                into.setdefault(key, []).extend(vals)
    return merged
