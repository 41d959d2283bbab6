"""Running a suite on a model and storing the run, batch by batch, with its provenance."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import invarbench
from invarbench.cards.catalog import CardRef
from invarbench.data import load_eval_data
from invarbench.errors import InvarbenchError, ValidationError
from invarbench.evaluation.measure import aggregate, measure_batch, reliability_flags
from invarbench.metrics.stats import MetricValue
from invarbench.models.loading import load_model, resolve_local_file, sha256_file
from invarbench.progress import ProgressFactory, no_progress
from invarbench.store.db import RunProvenance, Store
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


@dataclass(frozen=True)
class EvalOutcome:
    run_id: int
    card_id: str
    suite: Suite
    metrics: list[MetricValue]
    flags: list[str]
    examples: int
    duration_s: float
    device: str


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


def _model_file_sha(ref: CardRef) -> str:
    hub = ref.card.source.hub
    if hub is not None:
        return hub.sha256  # verified by the loader before deserialising
    return sha256_file(resolve_local_file(ref))


def evaluate(
    ref: CardRef, store: Store, options: EvalOptions, progress: ProgressFactory = no_progress
) -> EvalOutcome:
    """Evaluate the model of ``ref`` on its data set's suite and record the run in ``store``."""
    card = ref.card
    suite = load_suite(options.suite, card.dataset)
    device = resolve_device(options.device)
    if options.batch_size < 1:
        raise ValidationError(f"--batch-size must be at least 1, got {options.batch_size}")
    seed = suite.seed if options.seed is None else options.seed

    model = load_model(ref, device)
    requested = suite.num_examples if options.limit is None else min(options.limit, suite.num_examples)
    data = load_eval_data(card.dataset, data_dir=options.data_dir, limit=requested)
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
    )
    run_id = store.start_run(model_id, prov)
    started = time.perf_counter()
    try:
        per_example: dict[str, dict[str, list]] = {}
        advance = progress(f"{card.id} · {suite.name} v{suite.version}", len(data))
        flags = reliability_flags(model, data, suite, torch.Generator(device=device).manual_seed(seed))
        for start in range(0, len(data), options.batch_size):
            stop = min(start + options.batch_size, len(data))
            gen = torch.Generator(device=device).manual_seed(batch_seed(seed, start))
            values = measure_batch(model, data, start, stop, suite, gen)
            for measurement, fields in values.items():
                store.add_examples(run_id, measurement, start, fields)
                merged = per_example.setdefault(measurement, {})
                for key, vals in fields.items():
                    merged.setdefault(key, []).extend(vals)
            advance(stop - start)
        metrics = aggregate(per_example, suite)
        store.finish_run(run_id, metrics, flags)
    except BaseException as exc:
        message = str(exc) if isinstance(exc, InvarbenchError) else f"{type(exc).__name__}: {exc}"
        store.fail_run(run_id, message)
        raise
    return EvalOutcome(
        run_id=run_id, card_id=card.id, suite=suite, metrics=metrics, flags=flags, examples=len(data),
        duration_s=time.perf_counter() - started, device=prov.device,
    )
