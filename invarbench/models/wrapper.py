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

from invarbench.attacks._tensors import check_finite_logits  # noqa: F401 - re-exported; the attacks own it
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
        if bool((mean_t < 0).any() or (mean_t > 1).any() or (std_t > 1).any()):
            raise ValidationError(
                f"preprocessing mean {mean_t.tolist()} and std {std_t.tolist()} must be on the [0, 1] scale of the "
                "images (e.g. mean 0.1307, std 0.3081 for MNIST), not on the 0-255 scale"
            )
        self.register_buffer("mean", mean_t.view(1, channels, 1, 1))
        self.register_buffer("std", std_t.view(1, channels, 1, 1))
        self._identity_norm = bool((mean_t == 0).all() and (std_t == 1).all())
        self.check_inputs = True
        self.input_dtype = model_input_dtype(model)
        # Rows of non-finite logits seen since the last reset_nonfinite(), as a tensor on the
        # logits' device (no host synchronisation per forward pass); None: none counted yet.
        self._nonfinite: torch.Tensor | None = None
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> ModelWrapper:  # noqa: ARG002 - a wrapped model stays in eval mode
        return super().train(False)

    @contextlib.contextmanager
    def trusted_inputs(self) -> Iterator[None]:
        """Skip the per-call input shape and range checks (for attack loops that clip their own iterates)."""
        previous, self.check_inputs = self.check_inputs, False
        try:
            yield
        finally:
            self.check_inputs = previous

    @property
    def compute_dtype(self) -> torch.dtype:
        """The floating dtype the model computes in (its inputs are cast to it): float32 unless the
        model's parameters or an exported program's input are of another floating dtype."""
        return self.input_dtype or torch.float32

    def reset_nonfinite(self) -> None:
        """Start counting the inputs with NaN or Inf logits afresh (see :meth:`nonfinite_count`)."""
        self._nonfinite = None

    def nonfinite_count(self) -> int:
        """How many inputs got at least one NaN or Inf logit since :meth:`reset_nonfinite` (a host sync)."""
        return 0 if self._nonfinite is None else int(self._nonfinite)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: images ``[B, C, H, W]`` in [0, 1], any floating dtype. Returns the logits ``[B, classes]``
        as float32 (float64 stays float64): a half-precision model gets its inputs cast to its own
        dtype here, and its logits cast back, so every measurement computes in float32. Every call
        counts the rows with non-finite logits. Raises :class:`ValidationError` on an input of the
        wrong shape or outside [0, 1] (unless inside :meth:`trusted_inputs`)."""
        if self.check_inputs:
            check_input_shape(x, self.input_shape)
            check_input_range(x)
        if not self._identity_norm:
            x = (x - self.mean) / self.std
        if self.input_dtype is not None and x.dtype != self.input_dtype:
            x = x.to(self.input_dtype)
        try:
            logits = self.model(x)
        except torch.cuda.OutOfMemoryError:
            raise  # the device's limit, not the model's fault: --batch-size auto retries with fewer images
        except Exception as exc:  # noqa: BLE001 - whatever the model's own code raises is the model's fault
            raise ModelRaisedError(exc, int(x.shape[0])) from None
        if isinstance(logits, torch.Tensor) and logits.is_floating_point():
            if logits.dtype in (torch.float16, torch.bfloat16):
                logits = logits.float()
            if logits.dim() == 2:
                bad = (~torch.isfinite(logits.detach())).any(dim=1).sum()
                self._nonfinite = bad if self._nonfinite is None else self._nonfinite + bad
        return logits

    def check_output_shape(self, device: torch.device | str = "cpu", *, where: str | None = None) -> None:
        """Run batches of 2, 1 and 3 mid-grey images of the card's input size and check the logit shapes.

        A model that runs at some of these batch sizes and fails at others was exported for a fixed
        batch size (or with a bounded batch dimension); one that fails at all of them does not take
        the card's input size. Any floating logit dtype is accepted. ``where`` (e.g. "model card
        PATH") prefixes the error message.
        """
        prefix = f"{where}: " if where else ""
        size = list(self.input_shape)
        outputs: dict[int, object] = {}
        failures: dict[int, BaseException] = {}
        for batch in _PROBE_BATCHES:
            probe = torch.full((batch, *self.input_shape), 0.5, device=device)
            with torch.no_grad():
                try:
                    outputs[batch] = self(probe)
                except ModelRaisedError as exc:
                    failures[batch] = exc.original
        if failures:
            first = _PROBE_BATCHES[0] if _PROBE_BATCHES[0] in failures else min(failures)
            detail = _one_line(failures[first])
            failed = _sizes(sorted(failures))
            if outputs or all(_BATCH_GUARD in str(exc) for exc in failures.values()):
                works = f"runs on a batch of {_sizes(sorted(outputs))} inputs but " if outputs else ""
                raise ModelOutputError(
                    f"{prefix}the model {works}fails on a batch of {failed} inputs of size {size} ({detail}): it was "
                    f"exported for a fixed batch size, but invarbench runs batches of any size. {_DYNAMIC_BATCH_FIX}"
                )
            raise ModelOutputError(
                f"{prefix}the model fails on a batch of {first} mid-grey inputs of size {size} ({detail}): "
                "check preprocessing.input_size in the card, or what the model's forward raises on such an input"
            )
        reference = _PROBE_BATCHES[0]
        out = outputs[reference]
        if not isinstance(out, torch.Tensor) or out.shape != (reference, self.num_classes):
            shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelOutputError(
                f"{prefix}the model returns {shape} for a batch of {reference} inputs of size {size}; "
                f"expected [{reference}, {self.num_classes}] logits: check num_classes and the architecture's "
                "kwargs in the card"
            )
        if not out.is_floating_point():
            raise ModelOutputError(f"{prefix}the model returns {out.dtype} values; expected floating-point logits")
        if not bool(torch.isfinite(out).all()):
            raise ModelOutputError(
                f"{prefix}the model returns NaN or Inf logits for a batch of {reference} mid-grey inputs "
                f"of size {size}: "
                "its logits must be finite for every input in [0, 1] (e.g. clamp before a log or a division)"
            )
        for batch, other in outputs.items():
            if not isinstance(other, torch.Tensor) or other.shape != (batch, self.num_classes):
                shape = list(other.shape) if isinstance(other, torch.Tensor) else type(other).__name__
                raise ModelOutputError(
                    f"{prefix}the model returns {shape} for a batch of {batch} inputs of size {size} but "
                    f"[{reference}, {self.num_classes}] for a batch of {reference}: the logits must be "
                    f"[batch, {self.num_classes}] at every batch size (a squeeze() or a fixed reshape in the forward?)"
                )


# Batch 2 first (its messages name the card's fields), then 1 and an odd size: a program exported
# for one batch size fails at the others.
_PROBE_BATCHES = (2, 1, 3)
# torch.export's shape guards name the batch dimension so: "Guard failed: x.size()[0] == 2".
_BATCH_GUARD = ".size()[0]"
_DYNAMIC_BATCH_FIX = (
    "Re-export it with a dynamic batch dimension, torch.export.export(model, (x,), "
    "dynamic_shapes=({0: torch.export.Dim('batch')},)), or with 'invarbench pack', which does"
)


class ModelRaisedError(ModelOutputError):
    """The model's own forward raised ``original`` on a batch of ``batch`` inputs: reported in one line
    (the caller names the model and the measurement), never as a traceback from inside an attack."""

    def __init__(self, original: BaseException, batch: int) -> None:
        super().__init__(f"the model's forward raised {_one_line(original)} on a batch of {batch} input(s)")
        self.original = original


def _sizes(batches: Sequence[int]) -> str:
    """[1, 3] -> "1 or 3"; [1, 2, 3] -> "1, 2 or 3"."""
    names = [str(b) for b in batches]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def model_input_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype ``model`` takes its inputs in: an exported program's declared input dtype
    (``input_dtype``), else that of its first floating parameter or buffer; None when it has neither."""
    declared = getattr(model, "input_dtype", None)
    if isinstance(declared, torch.dtype):
        return declared
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


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
