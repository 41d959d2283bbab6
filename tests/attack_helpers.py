"""Tiny models with known answers for the attack and measurement tests.

- :class:`LinearImageModel`: logits ``W x + b`` on flattened images; every distance to a decision
  boundary is analytic.
- :func:`trained_tiny_cnn`: a small CNN trained in a second on a synthetic three-class task
  (which third of the image holds a bright bar), so that it is accurate but attackable.
- Models built to trip each reliability flag.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


class LinearImageModel(nn.Module):
    """``f(x) = W flatten(x) + b`` for images of shape ``shape``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, shape=(1, 8, 8)) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.weight = nn.Parameter(weight.clone(), requires_grad=False)
        self.bias = nn.Parameter(
            bias.clone() if bias is not None else torch.zeros(weight.shape[0]), requires_grad=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


def random_linear(classes: int, shape=(1, 8, 8), scale: float = 1.0, seed: int = 0) -> LinearImageModel:
    gen = torch.Generator().manual_seed(seed)
    d = int(torch.tensor(shape).prod())
    return LinearImageModel(scale * torch.randn(classes, d, generator=gen), shape=shape)


def mid_images(n: int, shape=(1, 8, 8), spread: float = 0.05, seed: int = 1) -> torch.Tensor:
    """Images near the middle of the box (0.5 +- a little), so small balls stay inside it."""
    gen = torch.Generator().manual_seed(seed)
    return (0.5 + spread * torch.randn((n, *shape), generator=gen)).clamp(0.0, 1.0)


def linear_min_l2(model: LinearImageModel, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Analytic minimal L2 distance to the region where ``y`` is not the argmax (away from the
    box): ``min_j (f_y - f_j) / ||w_y - w_j||``, and the foot of that perpendicular."""
    w = model.weight
    logits = model(x)
    margin = logits.gather(1, y[:, None]) - logits  # [n, K]
    wd = w[y][:, None, :] - w[None, :, :]  # [n, K, D]
    norms = wd.norm(dim=2)
    dist = margin / norms.clamp_min(1e-12)
    dist[torch.arange(x.shape[0]), y] = float("inf")
    best, j = dist.min(dim=1)
    rows = torch.arange(x.shape[0])
    direction = -wd[rows, j] / norms[rows, j][:, None]
    foot = x.flatten(1) + best[:, None] * direction
    return best, foot.view_as(x)


# --- a small CNN on a synthetic task ---------------------------------------------------------


def bar_images(n: int, seed: int, size: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes: a bright vertical bar in the left, middle or right third, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=gen)
    x = 0.25 * torch.rand((n, 1, size, size), generator=gen)
    third = size // 3
    col = y * third + torch.randint(0, third, (n,), generator=gen)
    x[torch.arange(n), 0, :, col] += 0.5 + 0.25 * torch.rand((n, 1), generator=gen)
    return x.clamp(0.0, 1.0), y


class TinyCNN(nn.Module):
    def __init__(self, size: int = 12) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.fc = nn.Linear(6 * (size // 2) ** 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1))


@functools.lru_cache(maxsize=1)
def _trained_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = TinyCNN()
    x, y = bar_images(600, seed=10)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _epoch in range(6):
        for s in range(0, 600, 50):
            opt.zero_grad()
            F.cross_entropy(model(x[s : s + 50]), y[s : s + 50]).backward()
            opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def trained_tiny_cnn() -> TinyCNN:
    """The same trained TinyCNN every call (trained once per test session), frozen, in eval mode."""
    model = TinyCNN()
    model.load_state_dict(_trained_state())
    model.eval().requires_grad_(False)
    return model


# --- models built to trip the reliability flags -------------------------------------------------


class AlwaysDropout(nn.Module):
    """A randomised defence: dropout on the input even in eval mode."""

    def __init__(self, inner: nn.Module, p: float = 0.3) -> None:
        super().__init__()
        self.inner, self.p = inner, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(F.dropout(x, self.p, training=True))


class SoftmaxOutput(nn.Module):
    """Returns probabilities instead of logits."""

    def __init__(self, inner: nn.Module, log: bool = False) -> None:
        super().__init__()
        self.inner, self.log = inner, log

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        return F.log_softmax(out, dim=1) if self.log else F.softmax(out, dim=1)


class Quantized(nn.Module):
    """Rounds the input to 8 bits first: the gradient of ``round`` is zero everywhere."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 255) / 255)


class SqrtInput(nn.Module):
    """``sqrt`` of the input behind a ``where``: finite logits, NaN gradient at zero pixels."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.where(x > 0, x.sqrt(), torch.zeros_like(x)))


class NaNLogits(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        return torch.cat([out[:, :1] * float("nan"), out[:, 1:]], dim=1)
