"""The model wrapper: what every measurement sees of a model.

It owns the preprocessing (inputs are always images in [0, 1]; mean/std normalisation happens
here, never in an attack), puts the model in eval mode with frozen parameters, checks the input
shape and range on every call (unless an attack loop vouches for them with
:meth:`ModelWrapper.trusted_inputs`), and checks the logit shape once at load time.
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
        """Skip the per-call input shape and range checks (for attack loops that clip their own iterates)."""
        previous, self.check_inputs = self.check_inputs, False
        try:
            yield
        finally:
            self.check_inputs = previous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.check_inputs:
            check_input_shape(x, self.input_shape)
            check_input_range(x)
        if not self._identity_norm:
            x = (x - self.mean) / self.std
        return self.model(x)

    def check_output_shape(self, device: torch.device | str = "cpu", *, where: str | None = None) -> None:
        """Run a batch of two mid-grey images of the card's input size and check the logit shape.

        ``where`` (e.g. "model card PATH") prefixes the error message.
        """
        prefix = f"{where}: " if where else ""
        probe = torch.full((2, *self.input_shape), 0.5, device=device)
        with torch.no_grad():
            try:
                out = self(probe)
            except (RuntimeError, AssertionError, ValueError, TypeError, IndexError) as exc:
                detail = " ".join(str(exc).split())[:300]
                raise ModelOutputError(
                    f"{prefix}the model fails on a batch of 2 inputs of size {list(self.input_shape)} "
                    f"({type(exc).__name__}: {detail}): check preprocessing.input_size in the card"
                ) from None
        if not isinstance(out, torch.Tensor) or out.shape != (2, self.num_classes):
            shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelOutputError(
                f"{prefix}the model returns {shape} for a batch of 2 inputs of size {list(self.input_shape)}; "
                f"expected [2, {self.num_classes}] logits: check num_classes and the architecture's kwargs in the card"
            )
        if not out.is_floating_point():
            raise ModelOutputError(f"{prefix}the model returns {out.dtype} values; expected floating-point logits")


def check_input_shape(x: torch.Tensor, input_shape: tuple[int, ...]) -> None:
    if x.dim() != len(input_shape) + 1 or tuple(x.shape[1:]) != tuple(input_shape):
        raise ValidationError(
            f"model inputs must be a batch of images of size {list(input_shape)}, got a tensor of shape {list(x.shape)}"
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
