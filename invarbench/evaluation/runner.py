"""Running a suite on a model and recording the run: plan, execute, sink.

:func:`evaluate` plans (the options validated once, :func:`invarbench.evaluation.options.plan_run`),
loads the card's model and hands it to :func:`evaluate_loaded`, which composes the steps: the data and
the model prepared on the device, the run's :class:`~invarbench.store.Provenance`, the sink's start
(:mod:`invarbench.evaluation.sinks`), the execute step (:func:`invarbench.evaluation.pipeline.run_suite`,
or :func:`_sharded` under torchrun) whose every computed batch goes to the sink, and the sink's finish,
or its fail with the one line of :func:`describe_failure`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import invarbench
from invarbench.card_checks import check_card_context
from invarbench.cards.catalog import CardRef
from invarbench.data import load_eval_data
from invarbench.data.registry import EvalData
from invarbench.errors import InvarbenchError, ModelOutputError, ValidationError
from invarbench.evaluation import distributed
from invarbench.evaluation.distributed import Ranks
from invarbench.evaluation.memory import MemoryPlan, is_out_of_memory
from invarbench.evaluation.options import EvalOptions, RunPlan, plan_run
from invarbench.evaluation.pipeline import (
    BatchNote,
    BatchResult,
    SuiteResult,
    batch_grid,
    check_model,
    finish_suite,
    measure_one,
    run_suite,
    stored_fit,
)
from invarbench.evaluation.sinks import RunSink, StartedRun, sink_for
from invarbench.evaluation.speed import Autocast, compile_model, reproducible_float32
from invarbench.leaderboard_policy import FULL, run_kind
from invarbench.metrics.stats import MetricValue
from invarbench.models.loading import load_model
from invarbench.models.wrapper import ModelWrapper
from invarbench.progress import ProgressFactory, no_progress
from invarbench.store import ModelSnapshot, Provenance, Store, probes
from invarbench.suites.schema import Suite

__all__ = [
    "EvalOptions",
    "EvalOutcome",
    "describe_failure",
    "evaluate",
    "evaluate_loaded",
    "resume_hint",
]


@dataclass(frozen=True)
class EvalOutcome:
    run_id: int | None  # None: the run went to no store (the Python API without db)
    card_id: str
    suite: Suite
    metrics: list[MetricValue]
    flags: list[str]
    examples: int
    duration_s: float  # seconds spent evaluating, summed over the attempts of a resumed run
    device: str
    resumed: bool = False  # an unfinished run was continued (``EvalOptions.resume``)
    batches_reused: int = 0  # batches that an earlier attempt had stored
    peak_memory_bytes: int | None = None
    per_example: dict | None = None  # every measurement's per-example values (merged batches)
    model_dtype: str | None = None  # the floating dtype the model computes in
    ranked: bool = True  # a full run on the official test split (invarbench.leaderboard_policy.run_kind)
    provenance: dict | None = None  # the run's provenance fields, as stored
    execution: dict | None = None  # how it was computed (execution.json), for auto, bf16, compile, torchrun


def resume_hint(card_id: str) -> str:
    """What to do after an interrupted run of ``card_id``: the stored and printed Ctrl-C message's tail."""
    return f"the completed batches are stored; continue with 'invarbench eval {card_id} --resume' and the same options"


def describe_failure(exc: BaseException, *, where: str | None = None, card_id: str | None = None) -> str:
    """The one line a failed run is recorded and reported with. ``where`` names the model ("model card
    ID"), prefixed to the model's own errors; ``card_id`` goes into the Ctrl-C message's resume hint."""
    if isinstance(exc, KeyboardInterrupt):
        return f"interrupted (KeyboardInterrupt): {resume_hint(card_id or 'MODEL')}"
    if distributed.is_stopped(exc):
        return f"{distributed.stopped_message()}; the finished batches are stored: rerun with --resume"
    if isinstance(exc, ModelOutputError) and where is not None:
        return f"{where}: {exc}"  # the measurements only know the model: name it
    if is_out_of_memory(exc):  # without --batch-size auto
        return f"out of memory ({type(exc).__name__}): use --batch-size auto, or a smaller --batch-size"
    if isinstance(exc, InvarbenchError):
        return str(exc)
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def evaluate(
    ref: CardRef, store: Store | None, options: EvalOptions, progress: ProgressFactory = no_progress
) -> EvalOutcome:
    """Evaluate the model of ``ref`` on its data set's suite and record the run in ``store`` (None: record
    nothing; the outcome's ``run_id`` is None).

    Runs the checks of 'invarbench cards validate' first, then loads the model (its file's checksum
    verified before anything reads it). Every batch's measurements are committed in one transaction
    as soon as they are computed. With ``options.resume`` the newest unfinished run with the same
    model snapshot, suite version and settings hash, seed, examples, batch size, device, dtype and code
    versions is continued:
    its stored batches are read back instead of recomputed, so its metrics equal those of an
    uninterrupted run. A run that raises (Ctrl-C included) is marked failed with the error, and can be
    resumed. Raises :class:`~invarbench.errors.OptionError` for a bad option and other
    :class:`InvarbenchError` subclasses with one-line messages naming the card.

    Under torchrun (``options.ranks``) every process calls this; the batches are shared among them
    (:mod:`invarbench.evaluation.distributed`), rank 0 alone is given the ``store`` (the others pass
    None), and every rank returns the same outcome.
    """
    card = ref.card
    plan = plan_run(options, card.dataset)
    sink = sink_for(store, plan.ranks)
    if plan.ranks is not None:
        distributed.join(plan.ranks)
        if plan.device.type == "cuda":
            torch.cuda.set_device(plan.device)
    check_card_context(ref)  # the same checks as 'invarbench cards validate'
    with reproducible_float32(plan.device):  # the loader's forward pass (logits' shape) too
        loaded = load_model(ref, plan.device)
    hub = card.source.hub
    record = ModelSnapshot(
        card_id=card.id,
        name=card.name,
        dataset=card.dataset,
        card_yaml=loaded.card_bytes.decode("utf-8"),
        card_sha256=loaded.card_sha256,
        file_sha256=loaded.file_sha256,
        hub_repo=hub.repo_id if hub else None,
        hub_revision=hub.revision if hub else None,
        training_method=card.training.method,
    )
    return evaluate_loaded(loaded.wrapper, record, plan, sink, progress, where=f"model card {card.id}")


def evaluate_loaded(
    model: ModelWrapper,
    record: ModelSnapshot,
    plan: RunPlan,
    sink: RunSink,
    progress: ProgressFactory = no_progress,
    *,
    where: str,
) -> EvalOutcome:
    """Run ``plan`` on a loaded, wrapped ``model`` (on ``plan.device``) and give the run to ``sink``:
    the data loaded and placed, the model compiled or put under autocast as asked, the provenance
    built, the run started (or continued), every computed batch stored, the run finished, or failed
    with :func:`describe_failure`'s line and the error raised again. ``where`` names the model in
    errors ("model card ID"). Raises :class:`ValidationError` when the data's image size is not the
    model's, and whatever the measurements raise (a :class:`ModelOutputError` naming ``where``)."""
    data = _evaluation_data(plan, record.dataset, model.input_shape, where)
    with reproducible_float32(plan.device):  # IEEE float32 and, on a GPU, deterministic kernels
        net, compiled = _prepared(model, data, plan)
        prov = _provenance(plan, record.dataset, data, model)
        run = sink.start(record, prov, resume=plan.options.resume)
        clock = _Clock(run.duration_s, plan.device)
        try:
            label = f"{record.card_id} · {plan.suite.name} v{plan.suite.version}"
            result, execution = _execute(net, data, plan, run, sink, clock, progress(label, len(data)), compiled)
            duration, peak = clock.spent(), clock.peak()
            sink.finish(run.run_id, result, execution=execution, duration_s=duration, peak_memory_bytes=peak)
        except BaseException as exc:
            message = describe_failure(exc, where=where, card_id=record.card_id)
            sink.fail(run.run_id, message, duration_s=clock.spent(), peak_memory_bytes=clock.peak())
            if isinstance(exc, ModelOutputError):
                raise ModelOutputError(message) from None
            raise
    ranked = run_kind(record.dataset, prov.data_source, prov.data_digest, len(data), plan.suite.num_examples)
    return EvalOutcome(
        run_id=run.run_id,
        card_id=record.card_id,
        suite=plan.suite,
        metrics=result.metrics,
        flags=result.flags,
        examples=len(data),
        duration_s=duration,
        device=prov.device,
        resumed=run.resumed,
        batches_reused=len(run.stored),
        peak_memory_bytes=peak,
        per_example=result.per_example,
        model_dtype=prov.model_dtype,
        ranked=ranked == FULL,
        provenance=prov.values(),
        execution=execution,
    )


@dataclass
class _Clock:
    """Seconds spent on a run (``before``: by its earlier attempts) and the peak memory so far."""

    before: float
    device: torch.device
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def spent(self) -> float:
        return self.before + (time.perf_counter() - self.started)

    def peak(self) -> int | None:
        return probes.peak_memory_bytes(self.device)


def _evaluation_data(plan: RunPlan, dataset: str, input_shape: tuple[int, ...], where: str) -> EvalData:
    """The examples ``plan`` asks for, checked against the model's input size and, on a GPU, moved
    there once (no copy per batch or measurement)."""
    options = plan.options
    data = load_eval_data(dataset, data_dir=options.data_dir, limit=plan.requested, custom=options.data)
    if tuple(data.x.shape[1:]) != input_shape:
        raise ValidationError(
            f"{where} declares input size {list(input_shape)}, but data set "
            f"'{dataset}' has images of size {list(data.x.shape[1:])}"
        )
    if plan.device.type == "cuda":
        x, y = data.x.pin_memory(), data.y.pin_memory()
        data = dataclasses.replace(data, x=x.to(plan.device, non_blocking=True), y=y.to(plan.device, non_blocking=True))
    return data


def _prepared(model: ModelWrapper, data: EvalData, plan: RunPlan) -> tuple[nn.Module, dict[str, Any] | None]:
    """The network the measurements run: ``model`` compiled (``--compile``, its measured effect
    returned) and under bf16 autocast (``--precision bf16``) as ``plan`` asks."""
    compiled = None
    if plan.options.compile:
        n = min(plan.suite.checks.examples, len(data))
        compiled = compile_model(model, data.x[:n].to(plan.device), data.y[:n].to(plan.device))
    if plan.precision != "bf16":
        return model, compiled
    if plan.device.type == "cuda":
        # Tensor cores run bf16 convolutions fastest on channels-last weights (a float32 run keeps
        # the model's own layout: another layout picks other kernels, which round differently).
        model.model.to(memory_format=torch.channels_last)
    return Autocast(model, plan.device.type), compiled


def _provenance(plan: RunPlan, dataset: str, data: EvalData, model: ModelWrapper) -> Provenance:
    """Everything that produces the run's numbers, the machine's part read by the probes."""
    suite, options = plan.suite, plan.options
    bf16 = plan.precision == "bf16"
    return Provenance(
        suite_name=suite.name,
        suite_version=suite.version,
        dataset=dataset,
        invarbench_version=invarbench.__version__,
        git_commit=probes.git_commit(),
        torch_version=torch.__version__,
        device=probes.device_name(plan.device) + (" · torch.compile" if options.compile else ""),
        seed=plan.seed,
        batch_size=plan.batch_size,
        examples_requested=plan.requested,
        examples_effective=len(data),
        data_source=data.source if options.data is not None else None,
        model_dtype="bfloat16 (autocast)" if bf16 else str(model.compute_dtype).removeprefix("torch."),
        suite_num_examples=suite.num_examples,
        suite_settings=suite.settings(),
        suite_settings_hash=suite.settings_hash(),
        data_digest=data.digest,
    )


def _execute(
    net: nn.Module,
    data: EvalData,
    plan: RunPlan,
    run: StartedRun,
    sink: RunSink,
    clock: _Clock,
    advance: Callable[..., None],
    compiled: dict[str, Any] | None,
) -> tuple[SuiteResult, dict[str, Any] | None]:
    """The execute step: the reliability checks (on rank 0), every batch of the grid (the stored ones
    read back, each computed one given to ``sink`` at once), the metrics and flags, and the
    execution record (None for a plain float32 run of one process with a fixed batch size)."""
    ranks = plan.ranks
    check_flags = check_model(net, data, plan.suite, seed=plan.seed, device=plan.device) if plan.main else []
    memory = MemoryPlan(auto=True) if plan.auto else None
    steps = run_suite if ranks is None else functools.partial(_sharded, ranks=ranks)
    batches = []
    for batch in steps(
        net,
        data,
        plan.suite,
        seed=plan.seed,
        batch_size=plan.batch_size,
        device=plan.device,
        stored=run.stored,
        note=lambda s, e, what: advance(0, f"{s}-{e}: {what}"),
        memory=memory,
    ):
        if batch.computed:
            sink.add_batch(run.run_id, batch, duration_s=clock.spent(), peak_memory_bytes=clock.peak())
        batches.append(batch)
        advance(batch.stop - batch.start)
    used = memory.record() if memory is not None else None
    if ranks is not None:
        check_flags = distributed.broadcast(ranks, check_flags, "sharing the reliability checks' flags")
        if memory is not None:  # the fewest images at once any process settled on, per measurement
            records = distributed.all_gather(ranks, used, "sharing the images given at once")
            used = {k: min(r[k] for r in records if k in r) for k in sorted({k for r in records for k in r})}
    execution = None
    if plan.auto or compiled is not None or plan.precision != "float32" or ranks is not None:
        execution = {
            "batch_size": "auto" if plan.auto else plan.batch_size,
            "images_at_once": used,
            "precision": plan.precision,
            "compile": compiled,
            "processes": 1 if ranks is None else ranks.world,
        }
    ordered = [b.values for b in sorted(batches, key=lambda b: b.start)]
    return finish_suite(ordered, plan.suite, check_flags), execution


def _sharded(
    model: nn.Module,
    data: EvalData,
    suite: Suite,
    *,
    seed: int,
    batch_size: int,
    device: torch.device,
    stored: dict,
    note: BatchNote,
    ranks: Ranks,
    memory: MemoryPlan | None,
) -> Iterator[BatchResult]:
    """:func:`run_suite` shared among the ranks of a distributed run: the stored batches first (as
    they are), then every other batch of the same grid, computed by one rank and received by all,
    round by round (:func:`invarbench.evaluation.distributed.sharded`). The values of a batch are
    those of a single process, whichever rank computes them. Yields in completion order."""
    grid = stored_fit(batch_grid(len(data), batch_size), stored, batch_size)
    for start in sorted(stored):
        yield BatchResult(start, grid[start], stored[start], computed=False)
    todo = {s: e for s, e in grid.items() if s not in stored}
    costs = {s: distributed.batch_cost(suite, s, e) for s, e in todo.items()}
    own_note = note if ranks.main else None

    def compute(start: int, stop: int) -> BatchResult:
        return measure_one(
            model, data, suite, seed=seed, start=start, stop=stop, device=device, note=own_note, memory=memory
        )

    for results in distributed.sharded(ranks, todo, costs, compute):
        yield from results
