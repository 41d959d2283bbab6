"""Running a suite on a model and storing the run, batch by batch, with its provenance."""

from __future__ import annotations

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
from invarbench.evaluation.measure import aggregate, measure_batch, reliability_flags, result_flags
from invarbench.metrics.stats import MetricValue
from invarbench.models.loading import load_model, resolve_local_file, sha256_file
from invarbench.progress import ProgressFactory, no_progress
from invarbench.store.db import ResumedRun, RunProvenance, Store
from invarbench.suites.schema import Suite, load_suite

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class EvalOptions:
    suite: str = "standard"
    limit: int | None = None
    batch_size: int = 250
    seed: int | None = None  # None: the suite's seed
    device: str = "auto"
    data_dir: Path | None = None
    # "npz:PATH": a custom evaluation set that replaces the images of the card's data set (which
    # still selects the suite); see invarbench.data.read_custom_npz.
    data: str | None = None
    # Continue the newest unfinished run with the same model snapshot and provenance, if any.
    resume: bool = False


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
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def batch_seed(seed: int, batch_start: int) -> int:
    """Each batch draws from its own generator, so a batch's numbers depend only on its position."""
    return (seed * 1_000_003 + batch_start) % (2**63)


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
    return (f"interrupted (KeyboardInterrupt): the completed batches are stored; continue with "
            f"'invarbench eval {card_id} --resume' and the same options")


def _model_file_sha(ref: CardRef) -> str:
    hub = ref.card.source.hub
    if hub is not None:
        return hub.sha256  # verified by the loader before deserialising
    return sha256_file(resolve_local_file(ref))


def evaluate(
    ref: CardRef, store: Store, options: EvalOptions, progress: ProgressFactory = no_progress
) -> EvalOutcome:
    """Evaluate the model of ``ref`` on its data set's suite and record the run in ``store``.

    Every batch's measurements are committed in one transaction as soon as they are computed. With
    ``options.resume`` the newest unfinished run with the same model snapshot, suite version, seed,
    examples, batch size, device and code versions is continued: its stored batches are read back
    instead of recomputed, so its metrics equal those of an uninterrupted run. A run that raises
    (Ctrl-C included) is marked failed with the error, and can be resumed.
    """
    card = ref.card
    suite = load_suite(options.suite, card.dataset)
    device = resolve_device(options.device)
    if options.batch_size < 1:
        raise ValidationError(f"--batch-size must be at least 1, got {options.batch_size}")
    seed = suite.seed if options.seed is None else options.seed

    check_card_context(ref)  # the same checks as 'invarbench cards validate'
    model = load_model(ref, device)
    requested = suite.num_examples if options.limit is None else min(options.limit, suite.num_examples)
    data = load_eval_data(card.dataset, data_dir=options.data_dir, limit=requested, custom=options.data)
    if tuple(data.x.shape[1:]) != model.input_shape:
        raise ValidationError(
            f"model card {ref.path} declares input size {list(model.input_shape)}, but data set "
            f"'{card.dataset}' has images of size {list(data.x.shape[1:])}"
        )

    model_id = store.upsert_model(
        card_id=card.id, name=card.name, dataset=card.dataset, card_yaml=ref.path.read_text(),
        card_sha256=ref.sha256, file_sha256=_model_file_sha(ref),
        hub_repo=card.source.hub.repo_id if card.source.hub else None,
        hub_revision=card.source.hub.revision if card.source.hub else None,
        training_method=card.training.method,
    )
    prov = RunProvenance(
        suite_name=suite.name, suite_version=suite.version, dataset=card.dataset,
        invarbench_version=invarbench.__version__, git_commit=git_commit(), torch_version=torch.__version__,
        device=device_name(device), seed=seed, batch_size=options.batch_size,
        examples_requested=requested, examples_effective=len(data),
        data_source=data.source if options.data is not None else None,
        model_dtype=str(model.compute_dtype).removeprefix("torch."), suite_num_examples=suite.num_examples,
    )
    resumed: ResumedRun | None = store.resume_run(model_id, prov) if options.resume else None
    if resumed is not None:
        run_id, stored, spent_before = resumed.run_id, resumed.batches, resumed.duration_s
    else:
        run_id, stored, spent_before = store.start_run(model_id, prov), {}, 0.0
    starts = range(0, len(data), options.batch_size)
    unexpected = sorted(set(stored) - set(starts))
    if unexpected:  # cannot happen for runs this code wrote: the batch size is part of the match
        store.fail_run(run_id, f"stored batches at examples {unexpected} do not fit batch size {options.batch_size}")
        raise InvarbenchError(f"run {run_id} cannot be resumed: its stored batches do not fit its batch size")

    started = time.perf_counter()

    def spent() -> float:
        return spent_before + (time.perf_counter() - started)

    try:
        per_example: dict[str, dict[str, list]] = {}
        advance = progress(f"{card.id} · {suite.name} v{suite.version}", len(data))
        flags = reliability_flags(model, data, suite, torch.Generator(device=device).manual_seed(seed), device)
        for start in starts:
            stop = min(start + options.batch_size, len(data))
            values = stored.get(start)
            if values is None:
                gen = torch.Generator(device=device).manual_seed(batch_seed(seed, start))
                values = measure_batch(model, data, start, stop, suite, gen,
                                       note=lambda what, s=start, e=stop: advance(0, f"{s}-{e}: {what}"), device=device)
                store.add_examples(run_id, start, values, duration_s=spent(),
                                   peak_memory_bytes=peak_memory_bytes(device))
            for measurement, fields in values.items():
                merged = per_example.setdefault(measurement, {})
                for key, vals in fields.items():
                    merged.setdefault(key, []).extend(vals)
            advance(stop - start)
        metrics = aggregate(per_example, suite)
        flags = flags + result_flags(per_example, suite)
        duration = spent()
        peak = peak_memory_bytes(device)
        store.finish_run(run_id, metrics, flags, duration_s=duration, peak_memory_bytes=peak)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            message = interrupted_message(card.id)
        elif isinstance(exc, ModelOutputError):
            message = f"model card {card.id}: {exc}"  # the measurements only know the model: name the card
        elif isinstance(exc, InvarbenchError):
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {exc}"
        try:
            store.fail_run(run_id, message, duration_s=spent(), peak_memory_bytes=peak_memory_bytes(device))
        except Exception:  # noqa: BLE001 - the store may be what failed: keep the original error
            pass
        if isinstance(exc, ModelOutputError):
            raise ModelOutputError(message) from None
        raise
    return EvalOutcome(
        run_id=run_id, card_id=card.id, suite=suite, metrics=metrics, flags=flags, examples=len(data),
        duration_s=duration, device=prov.device, resumed=resumed is not None,
        batches_reused=len(stored), peak_memory_bytes=peak,
    )
