"""Shared helpers of the benchmark scripts: models, side-by-side timing, tables.

Every speed figure the benchmarks print is a *ratio* of two variants timed side by side in
one process: the variants run interleaved (their order rotates every round), each round gives
one ratio, and the reported figure is the median over rounds. On a shared machine absolute
times are noise; ratios of interleaved runs are not.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))


def device_from(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    return torch.device(name)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_reference(name: str, device: torch.device) -> nn.Module:
    """A bundled reference model (``lenet-standard``, ``lenet-pgd-at``) or a random ``resnet20``
    (CIFAR-size, 3x32x32 inputs), wrapped like every evaluated model."""
    if name == "resnet20":
        from invarbench.models.architectures import build_architecture
        from invarbench.models.wrapper import ModelWrapper

        torch.manual_seed(0)
        return ModelWrapper(build_architecture("resnet20", num_classes=10), num_classes=10, input_shape=(3, 32, 32)).to(
            device
        )
    from invarbench.cards import resolve_card
    from invarbench.models.loading import load_model

    return load_model(resolve_card(f"mnist5k/{name}", None), device).wrapper


def load_inputs(model_name: str, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` mnist5k test images and labels for the LeNets (the 1,000 test images repeated when ``n`` is
    larger, so that a batch really holds ``n`` examples); seeded uniform noise for resnet20."""
    if model_name == "resnet20":
        gen = torch.Generator().manual_seed(1)
        return torch.rand((n, 3, 32, 32), generator=gen).to(device), torch.randint(0, 10, (n,), generator=gen).to(
            device
        )
    from invarbench.data import load_eval_data

    data = load_eval_data("mnist5k", limit=n)
    reps = -(-n // len(data))  # ceil
    x, y = data.x.repeat(reps, 1, 1, 1)[:n], data.y.repeat(reps)[:n]
    return x.to(device), y.to(device)


def interleaved(
    variants: dict[str, Callable[[], object]], repeats: int, device: torch.device, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall times (seconds) of every variant over ``repeats`` rounds; the order rotates every round."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            sync(device)
            t0 = time.perf_counter()
            variants[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def median_ratio(num: list[float], den: list[float], scale_num: float = 1.0, scale_den: float = 1.0) -> float:
    """The median over rounds of ``(num / scale_num) / (den / scale_den)``."""
    return statistics.median((a / scale_num) / (b / scale_den) for a, b in zip(num, den))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = "  ".join("-" * w for w in widths)
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([fmt(header), line, *(fmt(r) for r in rows)])


def trusted(model: nn.Module):  # a context manager
    """Skip the wrapper's input checks, as the measurement runner does around attacks."""
    return model.trusted_inputs()
