"""Running a suite on a model and storing the run, batch by batch, with its provenance."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import invarbench
from invarbench.card_checks import check_card_context
from invarbench.cards.catalog import CardRef
from invarbench.data import load_eval_data
from invarbench.errors import InvarbenchError, ModelOutputError, ValidationError
from invarbench.evaluation import distributed
from invarbench.evaluation.distributed import Ranks
from invarbench.evaluation.memory import MemoryPlan, is_out_of_memory
from invarbench.evaluation.pipeline import BatchResult, batch_grid, check_model, finish_suite, measure_one, run_suite
from invarbench.evaluation.speed import (
    EXECUTION_ARTIFACT,
    Autocast,
    check_precision,
    compile_model,
    execution_document,
)
from invarbench.metrics.stats import MetricValue
from invarbench.models.loading import load_model
from invarbench.models.wrapper import ModelWrapper
from invarbench.progress import ProgressFactory, no_progress
from invarbench.store import Provenance
from invarbench.store.db import FULL, ResumedRun, Store, run_kind
from invarbench.suites.schema import Suite, load_suite

DEVICES = ("auto", "cpu", "cuda")
# The batch of --batch-size auto: the unit of seeding and storage stays the default one, so an auto
# run has the numbers of a --batch-size 250 run and resumes one; auto only chooses how many images
# the model is given at once (invarbench.evaluation.memory).
AUTO_BATCH_SIZE = 250


@dataclass(frozen=True)
class EvalOptions:
    suite: str = "standard"
    limit: int | None = None
    batch_size: int | str = 250  # or "auto"
    seed: int | None = None  # None: the suite's seed
    device: str = "auto"
    data_dir: Path | None = None
    # "npz:PATH": a custom evaluation set that replaces the images of the card's data set (which
    # still selects the suite); see invarbench.data.read_custom_npz.
    data: str | None = None
    # Continue the newest unfinished run with the same model snapshot and provenance, if any.
    resume: bool = False
    # This process's place in a run launched by torchrun (distributed.ranks_from_environment); None:
    # a single process. Rank 0 alone is given a store; the others pass None.
    ranks: Ranks | None = None
    precision: str = "float32"  # or "bf16": autocast (invarbench.evaluation.speed)
    compile: bool = False  # torch.compile the model's network, its effect measured first


@dataclass(frozen=True)
class EvalOutcome:
    run_id: int
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
    ranked: bool = True  # a full run on the official test split (invarbench.store.db.run_kind)
    provenance: dict | None = None  # the run's provenance fields, as stored
    execution: dict | None = None  # how it was computed (execution.json), for auto, bf16, compile, torchrun


def batch_size_of(value: int | str) -> tuple[int, bool]:
    """``--batch-size``: (examples per batch, whether ``auto``). ``auto`` is :data:`AUTO_BATCH_SIZE`
    examples per batch with the images given to the model at once found per measurement. Raises
    :class:`ValidationError` for anything but a whole number from 1 or ``auto``."""
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return AUTO_BATCH_SIZE, True
        try:
            value = int(value)
        except ValueError:
            raise ValidationError(f"--batch-size must be a whole number from 1 or 'auto', got '{value}'") from None
    if value < 1:
        raise ValidationError(f"--batch-size must be at least 1, got {value}")
    return int(value), False


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise ValidationError(f"unknown device '{name}': use one of {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValidationError("device 'cuda' was requested but no CUDA GPU is available: use --device cpu")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return "cpu"


def git_commit() -> str | None:
    """The commit of the invarbench checkout this code runs from, if it is one."""
    root = Path(invarbench.__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def peak_rss_bytes() -> int | None:
    """This process's peak resident set size so far: ``VmHWM`` on Linux (it starts afresh at exec),
    else ``ru_maxrss``, which Linux would carry over from a parent process across fork and exec;
    None where neither exists (Windows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB elsewhere


def peak_memory_bytes(device: torch.device) -> int | None:
    """Peak memory so far: CUDA's max allocated on a GPU, else the process's peak resident set size."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return peak_rss_bytes()


def interrupted_message(card_id: str) -> str:
    return (
        f"interrupted (KeyboardInterrupt): the completed batches are stored; continue with "
        f"'invarbench eval {card_id} --resume' and the same options"
    )


@dataclass(frozen=True)
class ModelRecord:
    """What the store keeps of the evaluated model: its card (id, text as read, sha256) and its file's
    sha256 as verified by the loader."""

    card_id: str
    name: str
    dataset: str
    card_yaml: str
    card_sha256: str
    file_sha256: str
    hub_repo: str | None
    hub_revision: str | None
    training_method: str


def evaluate(
    ref: CardRef, store: Store | None, options: EvalOptions, progress: ProgressFactory = no_progress
) -> EvalOutcome:
    """Evaluate the model of ``ref`` on its data set's suite and record the run in ``store``.

    Runs the checks of 'invarbench cards validate' first, then loads the model (its file's checksum
    verified before anything reads it). Every batch's measurements are committed in one transaction
    as soon as they are computed. With ``options.resume`` the newest unfinished run with the same
    model snapshot, suite version and settings hash, seed, examples, batch size, device, dtype and code
    versions is continued:
    its stored batches are read back instead of recomputed, so its metrics equal those of an
    uninterrupted run. A run that raises (Ctrl-C included) is marked failed with the error, and can be
    resumed. Raises :class:`InvarbenchError` subclasses with one-line messages naming the card.

    Under torchrun (``options.ranks``) every process calls this; the batches are shared among them
    (:mod:`invarbench.evaluation.distributed`), rank 0 alone is given the ``store`` (the others pass
    None), and every rank returns the same outcome.
    """
    card = ref.card
    suite = load_suite(options.suite, card.dataset)
    device = resolve_device(options.device)
    if options.ranks is not None:
        if options.ranks.main and store is None:
            raise ValueError("rank 0 of a distributed run needs the store")
        distributed.join(options.ranks)
        if device.type == "cuda":
            device = torch.device("cuda", options.ranks.local_rank % torch.cuda.device_count())
            torch.cuda.set_device(device)
    elif store is None:
        raise ValueError("a single process needs the store")
    batch_size_of(options.batch_size)
    check_precision(options.precision)
    check_card_context(ref)  # the same checks as 'invarbench cards validate'
    loaded = load_model(ref, device)
    hub = card.source.hub
    record = ModelRecord(
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
    return evaluate_loaded(
        loaded.wrapper,
        record,
        suite,
        store,
        options,
        device,
        progress,
        where=f"model card {card.id}",
        data_dir=options.data_dir,
    )


def evaluate_loaded(
    model: ModelWrapper,
    record: ModelRecord,
    suite: Suite,
    store: Store,
    options: EvalOptions,
    device: torch.device,
    progress: ProgressFactory = no_progress,
    *,
    where: str,
    data_dir: Path | None = None,
) -> EvalOutcome:
    """The sink around :func:`invarbench.evaluation.pipeline.run_suite` for a loaded, wrapped model on
    ``device``: loads the data, records the model and the run's provenance, stores each computed
    batch, reports progress, aggregates, and marks the run finished (or failed, with the error).
    ``where`` names the model in errors ("model card ID")."""
    seed = suite.seed if options.seed is None else options.seed
    requested = suite.num_examples if options.limit is None else min(options.limit, suite.num_examples)
    data = load_eval_data(record.dataset, data_dir=data_dir, limit=requested, custom=options.data)
    if tuple(data.x.shape[1:]) != model.input_shape:
        raise ValidationError(
            f"{where} declares input size {list(model.input_shape)}, but data set "
            f"'{record.dataset}' has images of size {list(data.x.shape[1:])}"
        )
    ranks = options.ranks
    main = ranks is None or ranks.main
    batch_size, auto = batch_size_of(options.batch_size)
    precision = check_precision(options.precision)
    if device.type == "cuda":  # the whole evaluated set on the GPU once: no copy per batch or measurement
        x, y = data.x.pin_memory().to(device, non_blocking=True), data.y.pin_memory().to(device, non_blocking=True)
        data = dataclasses.replace(data, x=x, y=y)
    compiled = None
    if options.compile:
        n = min(suite.checks.examples, len(data))
        compiled = compile_model(model, data.x[:n].to(device), data.y[:n].to(device))
    if precision == "bf16" and device.type == "cuda":
        # Tensor cores run bf16 convolutions fastest on channels-last weights (a float32 run keeps
        # the model's own layout: another layout picks other kernels, which round differently).
        model.model.to(memory_format=torch.channels_last)
    net = Autocast(model, device.type) if precision == "bf16" else model
    model_dtype = "bfloat16 (autocast)" if precision == "bf16" else str(model.compute_dtype).removeprefix("torch.")
    memory = MemoryPlan(auto=True) if auto else None
    prov = Provenance(
        suite_name=suite.name,
        suite_version=suite.version,
        dataset=record.dataset,
        invarbench_version=invarbench.__version__,
        git_commit=git_commit(),
        torch_version=torch.__version__,
        device=device_name(device) + (" · torch.compile" if options.compile else ""),
        seed=seed,
        batch_size=batch_size,
        examples_requested=requested,
        examples_effective=len(data),
        data_source=data.source if options.data is not None else None,
        model_dtype=model_dtype,
        suite_num_examples=suite.num_examples,
        suite_settings=suite.settings(),
        suite_settings_hash=suite.settings_hash(),
        data_digest=data.digest,
    )
    resumed: ResumedRun | None = None
    if main:
        model_id = store.upsert_model(**dataclasses.asdict(record))
        resumed = store.resume_run(model_id, prov) if options.resume else None
        if resumed is not None:
            run_id, stored, spent_before = resumed.run_id, resumed.batches, resumed.duration_s
        else:
            run_id, stored, spent_before = store.start_run(model_id, prov), {}, 0.0
    if ranks is not None:  # rank 0 alone reads and writes the store: the others learn the run from it
        start = (run_id, stored, spent_before, resumed is not None) if main else None
        run_id, stored, spent_before, was_resumed = distributed.broadcast(ranks, start, "starting the run")
    else:
        was_resumed = resumed is not None
    started = time.perf_counter()

    def spent() -> float:
        return spent_before + (time.perf_counter() - started)

    try:
        advance = progress(f"{record.card_id} · {suite.name} v{suite.version}", len(data))
        check_flags = check_model(net, data, suite, seed=seed, device=device) if main else []
        batches = []
        for batch in (_sharded if ranks is not None else run_suite)(
            net,
            data,
            suite,
            seed=seed,
            batch_size=batch_size,
            device=device,
            stored=stored,
            note=lambda s, e, what: advance(0, f"{s}-{e}: {what}"),
            memory=memory,
            **({"ranks": ranks} if ranks is not None else {}),
        ):
            if batch.computed and main:
                store.add_examples(
                    run_id,
                    batch.start,
                    batch.values,
                    artifacts=batch.artifacts,
                    duration_s=spent(),
                    peak_memory_bytes=peak_memory_bytes(device),
                )
            batches.append((batch.start, batch.values))
            advance(batch.stop - batch.start)
        used = memory.record() if memory is not None else None
        if ranks is not None:
            check_flags = distributed.broadcast(ranks, check_flags, "sharing the reliability checks' flags")
            if memory is not None:  # the fewest images at once any process settled on, per measurement
                records = distributed.all_gather(ranks, used, "sharing the images given at once")
                used = {k: min(r[k] for r in records if k in r) for k in sorted({k for r in records for k in r})}
        execution = None
        if auto or compiled is not None or precision != "float32" or ranks is not None:
            execution = {
                "batch_size": "auto" if auto else batch_size,
                "images_at_once": used,
                "precision": precision,
                "compile": compiled,
                "processes": 1 if ranks is None else ranks.world,
            }
        result = finish_suite([values for _, values in sorted(batches, key=lambda b: b[0])], suite, check_flags)
        duration = spent()
        peak = peak_memory_bytes(device)
        if main:
            if execution is not None:
                store.add_artifact(run_id, EXECUTION_ARTIFACT, execution_document(execution), "application/json")
            store.finish_run(run_id, result.metrics, result.flags, duration_s=duration, peak_memory_bytes=peak)
    except BaseException as exc:
        if not main:
            raise
        if isinstance(exc, KeyboardInterrupt):
            message = interrupted_message(record.card_id)
        elif distributed.is_stopped(exc):
            message = f"{distributed.stopped_message()}; the finished batches are stored: rerun with --resume"
        elif isinstance(exc, ModelOutputError):
            message = f"{where}: {exc}"  # the measurements only know the model: name it
        elif is_out_of_memory(exc):  # without --batch-size auto
            message = f"out of memory ({type(exc).__name__}): use --batch-size auto, or a smaller --batch-size"
        elif isinstance(exc, InvarbenchError):
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):  # the store may be what failed: keep the original error
            store.fail_run(run_id, message, duration_s=spent(), peak_memory_bytes=peak_memory_bytes(device))
        if isinstance(exc, ModelOutputError):
            raise ModelOutputError(message) from None
        raise
    return EvalOutcome(
        run_id=run_id,
        card_id=record.card_id,
        suite=suite,
        metrics=result.metrics,
        flags=result.flags,
        examples=len(data),
        duration_s=duration,
        device=prov.device,
        resumed=was_resumed,
        batches_reused=len(stored),
        peak_memory_bytes=peak,
        per_example=result.per_example,
        model_dtype=prov.model_dtype,
        ranked=run_kind(record.dataset, prov.data_source, prov.data_digest, len(data), suite.num_examples) == FULL,
        provenance=prov.values(),
        execution=execution,
    )


def _sharded(
    model: ModelWrapper,
    data,  # EvalData
    suite: Suite,
    *,
    seed: int,
    batch_size: int,
    device: torch.device,
    stored: dict,
    note,  # a BatchNote
    ranks: Ranks,
    memory: MemoryPlan | None,
):  # an iterator of BatchResult
    """:func:`run_suite` shared among the ranks of a distributed run: the stored batches first (as
    they are), then every other batch of the same grid, computed by one rank and received by all,
    round by round (:func:`invarbench.evaluation.distributed.sharded`). The values of a batch are
    those of a single process, whichever rank computes them. Yields in completion order."""
    grid = batch_grid(len(data), batch_size)
    unexpected = sorted(set(stored) - set(grid))
    if unexpected:
        raise ValidationError(f"stored batches at examples {unexpected} do not fit batch size {batch_size}")
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
