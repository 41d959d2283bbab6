"""The opt-ins that trade exactness for speed: ``--precision bf16`` (autocast) and ``--compile``
(``torch.compile``), and what the runner records about how a run was computed (``execution.json``).

Evaluation computes in float32 by default: lower precision rounds gradients and logits, and can
mask gradients (a flat bf16 loss surface makes an attack look weaker than it is). On a GPU that
means IEEE float32: PyTorch lets cuDNN convolutions use TensorFloat-32 (TF32, a 10-bit mantissa)
on Ampere and later GPUs by default, so a run and ``results verify`` compute under
:func:`reproducible_float32`, which turns TF32 off for convolutions and matrix products (and on a
GPU asks for deterministic kernels). Both opt-ins
are recorded on the run, where its dtype and device are shown, and ``--resume`` continues only a
run made with the same ones:

- ``--precision bf16``: every forward pass of the model runs under ``torch.autocast`` with
  bfloat16 (matrix products and convolutions in bf16, reductions in float32); the logits are
  returned as float32; on a GPU the network's weights are made channels-last (the layout tensor
  cores run bf16 convolutions fastest in). The run's ``model_dtype`` reads ``bfloat16 (autocast)``.
- ``--compile``: the model's network is compiled with ``torch.compile`` (inductor: fused kernels,
  which round differently). Before the run, the compiled and the eager network are compared on the
  reliability checks' examples (logits and input gradients of the cross-entropy loss), and the
  differences are recorded; the run's ``device`` ends in `` · torch.compile``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from invarbench.errors import OptionError

PRECISIONS = ("float32", "bf16")
EXECUTION_ARTIFACT = "execution.json"


CUBLAS_WORKSPACE_ENV = "CUBLAS_WORKSPACE_CONFIG"  # cuBLAS is deterministic with a fixed workspace (CUDA docs)


@contextlib.contextmanager
def reproducible_float32(device: torch.device | None = None) -> Iterator[None]:
    """A block in which float32 convolutions (cuDNN) and matrix products (cuBLAS) compute in IEEE
    float32, not TF32, and, on a CUDA ``device``, with deterministic kernels where PyTorch has them;
    PyTorch's settings before it are restored after it, also on an error.

    PyTorch's default lets cuDNN convolutions round their float32 inputs to TF32 (10 mantissa bits)
    on Ampere and later GPUs: logits then move (by up to 0.12 relative for a ResNet-56 on an H100), and
    by how much depends on the kernel cuDNN picks for each batch size, so an example's logits change
    with its batch (on that H100, the ``batch_dependent_outputs`` flag on the ResNet-56 in eval mode). cuDNN may also
    pick kernels that sum in a varying order, so that two runs differ in their last bits. On a CUDA
    ``device`` the block therefore sets ``cudnn.deterministic`` (and ``benchmark`` off),
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless set, and ``torch.use_deterministic_algorithms(True,
    warn_only=True)`` unless already on: an operation without a deterministic kernel warns and still
    runs. The settings are process-wide; on a CPU the TF32 flags change nothing and the rest is left
    alone. Uses PyTorch's ``allow_tf32`` flags (``RuntimeError`` from PyTorch when the process has
    already set TF32 with both its old and new APIs)."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark)
    on_gpu = device is not None and torch.device(device).type == "cuda"
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    workspace = os.environ.get(CUBLAS_WORKSPACE_ENV)
    cudnn.allow_tf32 = False
    matmul.allow_tf32 = False
    if on_gpu:
        cudnn.deterministic, cudnn.benchmark = True, False
        os.environ.setdefault(CUBLAS_WORKSPACE_ENV, ":4096:8")
        if not was_deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark = saved
        if on_gpu:
            torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)
            if workspace is None:
                os.environ.pop(CUBLAS_WORKSPACE_ENV, None)


def check_precision(name: str) -> str:
    """``name`` if it is one of :data:`PRECISIONS`; else :class:`OptionError` (``precision``) naming them."""
    if name not in PRECISIONS:
        raise OptionError("precision", f"unknown {{option}} '{name}': use one of {', '.join(PRECISIONS)}")
    return name


class Autocast(nn.Module):
    """``model`` with every forward pass under ``torch.autocast(device_type, bfloat16)``; logits
    ``[B, K]`` come back as float32. Every other attribute is the wrapped model's."""

    def __init__(self, model: nn.Module, device_type: str) -> None:
        super().__init__()
        self.inner = model
        self.device_type = device_type

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            out = self.inner(x)
        return out.float() if out.dtype in (torch.float16, torch.bfloat16) else out


def _logits_and_gradients(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    with contextlib.ExitStack() as stack:
        trusted = getattr(net, "trusted_inputs", None)
        if trusted is not None:
            stack.enter_context(trusted())
        logits = net(x)
        (grad,) = torch.autograd.grad(nn.functional.cross_entropy(logits.float(), y, reduction="sum"), x)
    return logits.detach().double(), grad.detach().double()


def compile_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """Compile ``model.model`` (the network inside the wrapper) in place with ``torch.compile`` and
    measure what it changes on images ``x`` ``[N, C, H, W]`` (float32 in [0, 1]) with labels ``y``
    ``[N]``: the largest absolute difference of the logits and of the input gradients of the summed
    cross-entropy (float64 numbers), the largest relative one of the gradients (to the largest
    eager gradient entry), and how many predictions changed. Raises :class:`OptionError` (``compile``) when
    compiling fails (no C compiler for inductor, an unsupported model)."""
    eager_logits, eager_grad = _logits_and_gradients(model, x, y)
    eager_net = model.model
    model.model = torch.compile(eager_net)
    try:
        logits, grad = _logits_and_gradients(model, x, y)
    except Exception as exc:  # noqa: BLE001 - any compiler failure is reported in one line
        model.model = eager_net
        exc = getattr(exc, "original", exc)  # the wrapper's ModelRaisedError: what the compiled network raised
        text = str(exc).strip().splitlines()
        raise OptionError(
            "compile",
            f"torch.compile failed on this model ({type(exc).__name__}: {text[0] if text else ''}); "
            "evaluate without {option}",
        ) from None
    scale = float(eager_grad.abs().max()) or 1.0
    return {
        "examples": int(x.shape[0]),
        "max_abs_logit_difference": float((logits - eager_logits).abs().max()),
        "max_abs_gradient_difference": float((grad - eager_grad).abs().max()),
        "max_relative_gradient_difference": float((grad - eager_grad).abs().max()) / scale,
        "predictions_changed": int((logits.argmax(1) != eager_logits.argmax(1)).sum()),
    }


def execution_document(execution: dict[str, Any]) -> bytes:
    """The run's ``execution.json``: how it was computed (not what), as sorted, indented JSON."""
    return (json.dumps(execution, sort_keys=True, indent=1) + "\n").encode()
