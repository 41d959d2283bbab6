"""Seeing whether a model's passes compute in TF32: PyTorch's process-wide ``allow_tf32`` flags, read inside
every forward pass of the model wrapper and inside the backward pass through its logits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from invarbench.models.wrapper import ModelWrapper


def tf32_flags() -> tuple[bool, bool]:
    """(cuDNN convolutions, cuBLAS matrix products) may use TF32."""
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


@contextlib.contextmanager
def tf32_allowed() -> Iterator[None]:
    """TF32 allowed for both, as a process that asked for it has it (cuDNN's is PyTorch's default)."""
    saved = tf32_flags()
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def record_tf32(monkeypatch) -> dict[str, set[tuple[bool, bool]]]:
    """Patch the model wrapper so that each forward pass records :func:`tf32_flags` under ``forward``, and
    the backward pass through its logits under ``backward``."""
    seen: dict[str, set[tuple[bool, bool]]] = {"forward": set(), "backward": set()}
    forward = ModelWrapper.forward

    def recording(self, x):
        seen["forward"].add(tf32_flags())
        out = forward(self, x)
        if out.requires_grad:
            out.register_hook(lambda grad: seen["backward"].add(tf32_flags()))
        return out

    monkeypatch.setattr(ModelWrapper, "forward", recording)
    return seen
