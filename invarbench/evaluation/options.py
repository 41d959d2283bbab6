"""What an evaluation is asked to do (:class:`EvalOptions`), validated once into a :class:`RunPlan`.

Every check of an option lives here and raises :class:`~invarbench.errors.OptionError`, which names
the option as :class:`EvalOptions` and the Python API spell it (``batch_size``); the command line
names its flag instead (``--batch-size``, :mod:`invarbench.cli.eval`). Nothing here prints, loads a
model or opens a store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from invarbench.errors import OptionError
from invarbench.evaluation.distributed import Ranks
from invarbench.evaluation.speed import check_precision
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

    def validate(self) -> None:
        """Check every option that needs no data set: the batch size, the limit, the precision and
        the device. Raises :class:`OptionError` naming the first bad one."""
        batch_size_of(self.batch_size)
        check_limit(self.limit)
        check_precision(self.precision)
        resolve_device(self.device)


@dataclass(frozen=True)
class RunPlan:
    """:class:`EvalOptions` validated and resolved for one data set: the ``suite``, the ``device``
    (this rank's GPU under torchrun), the ``seed``, the examples ``requested`` (at most the suite's),
    the examples per batch and whether that is ``--batch-size auto``, and the ``precision``."""

    options: EvalOptions
    suite: Suite
    device: torch.device
    seed: int
    requested: int
    batch_size: int
    auto: bool
    precision: str

    @property
    def ranks(self) -> Ranks | None:
        return self.options.ranks

    @property
    def main(self) -> bool:
        """Whether this process writes the run and prints: a single process, or rank 0."""
        return self.ranks is None or self.ranks.main


def plan_run(options: EvalOptions, dataset: str) -> RunPlan:
    """Validate ``options`` once (:meth:`EvalOptions.validate`) and resolve them for ``dataset``. Raises
    :class:`OptionError` for a bad option and :class:`~invarbench.errors.NotFoundError` for an unknown
    suite or data set."""
    suite = load_suite(options.suite, dataset)
    options.validate()
    device = resolve_device(options.device)
    if options.ranks is not None and device.type == "cuda":  # one GPU per process of the machine
        device = torch.device("cuda", options.ranks.local_rank % torch.cuda.device_count())
    batch_size, auto = batch_size_of(options.batch_size)
    return RunPlan(
        options=options,
        suite=suite,
        device=device,
        seed=suite.seed if options.seed is None else options.seed,
        requested=suite.num_examples if options.limit is None else min(options.limit, suite.num_examples),
        batch_size=batch_size,
        auto=auto,
        precision=options.precision,
    )


def check_batch_size(value: int) -> int:
    """``value`` if it is at least 1; else :class:`OptionError` (``batch_size``)."""
    if value < 1:
        raise OptionError("batch_size", f"{{option}} must be at least 1, got {value}")
    return value


def batch_size_of(value: int | str) -> tuple[int, bool]:
    """``--batch-size``: (examples per batch, whether ``auto``). ``auto`` is :data:`AUTO_BATCH_SIZE`
    examples per batch with the images given to the model at once found per measurement. Raises
    :class:`OptionError` for anything but a whole number from 1 or ``auto``."""
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return AUTO_BATCH_SIZE, True
        try:
            value = int(value)
        except ValueError:
            raise OptionError(
                "batch_size", f"{{option}} must be a whole number from 1 or 'auto', got '{value}'"
            ) from None
    return check_batch_size(int(value)), False


def check_limit(value: int | None) -> int | None:
    """``value`` (None: every example) if it is at least 1; else :class:`OptionError` (``limit``)."""
    if value is not None and value < 1:
        raise OptionError("limit", f"{{option}} must be at least 1, got {value}")
    return value


def resolve_device(name: str) -> torch.device:
    """The device ``name`` ("auto": a CUDA GPU when available, else the CPU) stands for. Raises
    :class:`OptionError` (``device``) for another name, or for "cuda" without a CUDA GPU."""
    if name not in DEVICES:
        raise OptionError("device", f"unknown {{option}} '{name}': use one of {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise OptionError("device", "device 'cuda' was requested but no CUDA GPU is available: use {option} cpu")
    return torch.device(name)
