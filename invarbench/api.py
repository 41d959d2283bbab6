"""The Python API: evaluate a model held in memory, from a notebook or a script.

>>> import invarbench
>>> result = invarbench.evaluate_model(my_model, dataset="mnist5k", suite="quick", limit=64)
>>> result.metrics["robust_accuracy_linf"].value, result.flags

It applies every check the command line applies (logit shape and dtype at batch sizes 2, 1 and
3, finite logits, the reliability checks, NaN/Inf logits at any attack iterate) and runs the
same pipeline (:func:`invarbench.evaluation.pipeline.run_suite`); with ``db`` the run is stored
as ``invarbench eval`` stores one, under the model id ``<dataset>/<name>``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from invarbench.data import DATASETS
from invarbench.errors import ValidationError
from invarbench.evaluation.options import EvalOptions, plan_run
from invarbench.evaluation.runner import evaluate_loaded
from invarbench.evaluation.sinks import sink_for
from invarbench.measurements import PerExample
from invarbench.metrics.stats import MetricValue, format_interval, format_number
from invarbench.models.wrapper import ModelWrapper
from invarbench.progress import ProgressFactory, no_progress
from invarbench.store import ModelSnapshot
from invarbench.store.db import Store
from invarbench.suites.schema import Suite


@dataclass(frozen=True)
class EvaluationResult:
    """One evaluation: ``metrics`` by stable name (registry order; each with its value, standard
    error, 95 % interval and n), the reliability ``flags`` (a flagged model's numbers cannot be
    trusted as they stand), the per-example values of every measurement (``per_example``), the
    run's ``provenance`` (suite, versions, device, dtype, seed, examples, ...), the resolved
    ``suite``, and ``run_id`` (in ``db`` when one was given, else None)."""

    metrics: dict[str, MetricValue]
    flags: list[str]
    per_example: PerExample
    provenance: dict[str, object]
    suite: Suite
    run_id: int | None

    def __str__(self) -> str:
        lines = [f"{self.suite.key} v{self.suite.version} · {self.provenance.get('examples_effective')} examples"]
        for m in self.metrics.values():
            lines.append(f"  {m.name:<26} {format_number(m.value)}  {format_interval(m.ci_low, m.ci_high)}")
        lines.append(f"  flags: {', '.join(self.flags) or 'none'}")
        return "\n".join(lines)


def _state_sha256(model: nn.Module) -> str:
    """A digest of the model's parameters and buffers (names, dtypes, shapes, bytes): what the
    store keeps as the model's file checksum for a model that has no file."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _check_arguments(model: object, **values: object) -> None:
    """One clear ValidationError for an argument of the wrong type, before anything runs."""
    if not isinstance(model, nn.Module):
        raise ValidationError(
            f"model must be a torch.nn.Module, got {type(model).__name__}: wrap a function in an nn.Module"
        )
    for name in ("mean", "std"):
        value = values[name]
        if value is not None and not (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and all(isinstance(v, (int, float)) for v in value)
        ):
            raise ValidationError(
                f"{name} must be a sequence of numbers, one per channel (e.g. (0.1307,)), got {value!r}"
            )
    if (values["mean"] is None) != (values["std"] is None):
        raise ValidationError("give both mean and std (one value per channel), or neither")
    for name in ("limit", "seed", "batch_size"):
        value = values[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValidationError(f"{name} must be an integer, got {value!r}")


def evaluate_model(
    model: nn.Module,
    dataset: str = "mnist5k",
    suite: str = "quick",
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: str = "auto",
    limit: int | None = None,
    seed: int | None = None,
    db: str | None = None,
    batch_size: int = 250,
    name: str | None = None,
    data_dir: Path | None = None,
    progress: ProgressFactory = no_progress,
) -> EvaluationResult:
    """Evaluate ``model`` on ``dataset`` with ``suite`` and return the metrics, flags, per-example
    values and provenance.

    ``model``: any ``nn.Module`` mapping images ``[B, C, H, W]`` to logits ``[B, classes]``, with the
    data set's image size and number of classes. The images are float32 with pixel values in [0, 1];
    ``mean``/``std`` (both or neither, one value per channel, on that [0, 1] scale) normalise them
    before the model, ``(x - mean) / std``. Its parameters may be
    float32, float16 or bfloat16 (inputs are cast to its dtype, logits to float32). It is put in
    eval mode with frozen parameters while it runs, and given back in its train/eval mode and
    ``requires_grad`` flags as it was; it stays on ``device``. ``suite``: a suite name ("quick",
    "standard") or the path of a suite file of one's own (``my_suite.yaml``, docs/suites.md).
    ``device``: "auto" (a CUDA GPU when available), "cpu" or "cuda". ``limit``: the first N test
    examples only (at most the suite's number; fewer is a smoke run, never ranked when stored).
    ``seed``: default the suite's. ``batch_size``: examples per batch (the unit of storage and
    progress). ``db``: a database URL (``sqlite:///results.db``, ``postgresql://...``) to store the run
    in, as model ``<dataset>/<name>``; ``name`` defaults to the model's class name (give two models
    of one class different names: the site shows one row per model id); without ``db`` nothing is
    recorded and no database is opened (``run_id`` is None). ``data_dir``: the folder of
    downloaded data sets (mnist, cifar10, cifar100). ``progress``: a
    :data:`invarbench.progress.ProgressFactory` for a progress bar.

    Raises :class:`~invarbench.errors.NotFoundError` (unknown data set or suite),
    :class:`~invarbench.errors.OptionError` (a bad ``batch_size``, ``limit`` or ``device``, named so),
    :class:`~invarbench.errors.ValidationError` (other bad arguments, wrong input size) and
    :class:`~invarbench.errors.ModelOutputError` (wrong logit shape, NaN/Inf logits, the model's own
    forward raising), each with a one-line message. Protocol and references: docs/measurements.md.
    """
    _check_arguments(model, mean=mean, std=std, limit=limit, seed=seed, batch_size=batch_size)
    spec = DATASETS.get(dataset)
    options = EvalOptions(suite=suite, limit=limit, batch_size=batch_size, seed=seed, device=device, data_dir=data_dir)
    plan = plan_run(options, dataset)  # every option checked once, before the model is touched
    dev = plan.device
    name = name or type(model).__name__
    where = f"model {dataset}/{name}"
    modes = {m: m.training for m in model.modules()}
    grads = {p: p.requires_grad for p in model.parameters()}
    try:
        wrapper = ModelWrapper(
            model, num_classes=spec.num_classes, input_shape=spec.input_shape, mean=mean, std=std
        ).to(dev)
        wrapper.check_output_shape(dev, where=where)
        card = {
            "id": f"{dataset}/{name}",
            "name": name,
            "dataset": dataset,
            "num_classes": spec.num_classes,
            "source": "a model in memory (invarbench.evaluate_model)",
            "class": type(model).__qualname__,
            "preprocessing": {
                "input_size": list(spec.input_shape),
                "mean": list(mean) if mean else None,
                "std": list(std) if std else None,
            },
        }
        card_yaml = yaml.safe_dump(card, sort_keys=False)
        record = ModelSnapshot(
            card_id=f"{dataset}/{name}",
            name=name,
            dataset=dataset,
            card_yaml=card_yaml,
            card_sha256=hashlib.sha256(card_yaml.encode()).hexdigest(),
            file_sha256=_state_sha256(model),
            hub_repo=None,
            hub_revision=None,
            training_method="other",
        )
        store = Store(db) if db else None  # without db nothing is recorded and no database is opened
        try:
            outcome = evaluate_loaded(wrapper, record, plan, sink_for(store, None), progress, where=where)
        finally:
            if store is not None:
                store.close()
    finally:
        for module, mode in modes.items():
            module.train(mode)
        for param, flag in grads.items():
            param.requires_grad_(flag)
    return EvaluationResult(
        metrics={m.name: m for m in outcome.metrics},
        flags=list(outcome.flags),
        per_example=outcome.per_example or {},
        provenance=outcome.provenance or {},
        suite=plan.suite,
        run_id=outcome.run_id,
    )
