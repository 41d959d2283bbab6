"""The model wrapper: what every measurement sees of a model.

It owns the preprocessing (inputs are always images in [0, 1]; mean/std normalisation happens
here, never in an attack), puts the model in eval mode with frozen parameters, and checks the
input range and the logit shape.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from invarbench.errors import ModelOutputError, ValidationError

# Inputs may exceed [0, 1] by float rounding after an attack step; anything beyond is a bug.
_RANGE_TOLERANCE = 1e-5


class ModelWrapper(nn.Module):
    """Wraps a classifier ``f`` so that ``wrapper(x) = f((x - mean) / std)`` for x in [0, 1]."""

    def __init__(
        self,
        model: nn.Module,
        *,
        num_classes: int,
        input_shape: Sequence[int],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(s) for s in input_shape)  # (C, H, W)
        channels = self.input_shape[0]
        mean_t = torch.tensor(mean if mean is not None else [0.0] * channels, dtype=torch.float32)
        std_t = torch.tensor(std if std is not None else [1.0] * channels, dtype=torch.float32)
        if mean_t.numel() != channels or std_t.numel() != channels:
            raise ValidationError(
                f"preprocessing mean/std need {channels} values (one per channel), "
                f"got {mean_t.numel()} and {std_t.numel()}"
            )
        if bool((std_t <= 0).any()):
            raise ValidationError("preprocessing std must be positive")
        self.register_buffer("mean", mean_t.view(1, channels, 1, 1))
        self.register_buffer("std", std_t.view(1, channels, 1, 1))
        self._identity_norm = bool((mean_t == 0).all() and (std_t == 1).all())
        self.check_inputs = True
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> ModelWrapper:  # noqa: D102 - a wrapped model stays in eval mode
        return super().train(False)

    @contextlib.contextmanager
    def trusted_inputs(self) -> Iterator[None]:
        """Skip the per-call input range check (for attack loops that clip their own iterates)."""
        previous, self.check_inputs = self.check_inputs, False
        try:
            yield
        finally:
            self.check_inputs = previous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.check_inputs:
            check_input_range(x)
        if not self._identity_norm:
            x = (x - self.mean) / self.std
        return self.model(x)

    def check_output_shape(self, device: torch.device | str = "cpu") -> None:
        """Run a batch of two zero images of the card's input size and check the logit shape."""
        probe = torch.zeros((2, *self.input_shape), device=device)
        with torch.no_grad():
            try:
                out = self(probe)
            except RuntimeError as exc:
                raise ModelOutputError(
                    f"the model fails on a batch of input size {tuple(self.input_shape)}: {exc}"
                ) from None
        if not isinstance(out, torch.Tensor) or out.shape != (2, self.num_classes):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelOutputError(
                f"the model returns {shape} for a batch of 2 inputs of size {self.input_shape}; "
                f"expected (2, {self.num_classes}) logits: check num_classes and the input size in the card"
            )


def check_input_range(x: torch.Tensor) -> None:
    lo, hi = torch.aminmax(x.detach())
    if float(lo) < -_RANGE_TOLERANCE or float(hi) > 1 + _RANGE_TOLERANCE:
        raise ValidationError(
            f"model inputs must be images in [0, 1], got values in [{float(lo):.4g}, {float(hi):.4g}]"
        )


def check_finite_logits(logits: torch.Tensor) -> None:
    """NaN or Inf logits make every number meaningless: an error, not a flag."""
    if not bool(torch.isfinite(logits).all()):
        bad = int((~torch.isfinite(logits)).any(dim=1).sum())
        raise ModelOutputError(f"the model returned NaN or Inf logits for {bad} of {logits.shape[0]} examples")
