"""Packing a submitter's own model into a ``torch.export`` program (``invarbench pack``).

This runs the submitter's code, on the submitter's machine: that is its purpose. It imports
``module:factory``, builds the model, loads its weights (safetensors, or a torch checkpoint
read with ``torch.load(weights_only=True)``), exports it in eval mode with a dynamic batch
dimension and in the model's own floating dtype (that of its first floating parameter or
buffer: float32, or e.g. bfloat16 for a ``.bfloat16()`` module), saves the program with
``torch.export.save``, then loads the file back through the same checks invarbench applies to
submissions and compares its logits with the original module's, within a tolerance suited to
that dtype. The result carries the sha256 for the card.

The submitter's code may fail anywhere (on import, in the factory, in the forward): each such
failure becomes one :class:`ValidationError` that names the spec and the error.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from invarbench.cards.checksum import refuse_lfs_pointer, sha256_file
from invarbench.errors import NotFoundError, ValidationError
from invarbench.models.loading import load_state_dict_checked
from invarbench.models.safe_export import load_exported_module

_STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "network")
EXPORT_BATCH = 2  # torch.export specialises sizes 0 and 1, so trace with 2
CHECK_BATCH = 3  # ... and check with another size, to prove the batch dimension is dynamic
# The largest accepted |logit difference| between the module and the reloaded program, relative to
# 1 + max |logit|: a few units in the last place of the dtype, never tighter than 1e-4 (float32's).
_MIN_TOLERANCE = 1e-4
_TOLERANCE_ULPS = 8


@dataclass(frozen=True)
class PackResult:
    path: Path
    sha256: str
    size_bytes: int
    input_size: tuple[int, int, int]
    num_classes: int
    max_abs_diff: float  # between the original module and the reloaded program on random inputs
    dtype: torch.dtype = torch.float32  # the floating dtype the program takes its inputs in and computes in


def _describe(exc: BaseException) -> str:
    """``Type: message`` of the submitter's exception, on one line and shortened."""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run_import(name: str, run: Callable[[], object]) -> object:
    """Import the submitter's module with ``run``; its failures become one line."""
    try:
        return run()
    except ModuleNotFoundError as exc:  # the module itself, or a package it imports
        raise NotFoundError(f"cannot import module '{name}': {exc}") from None
    except SystemExit as exc:
        raise ValidationError(
            f"importing '{name}' called sys.exit({exc.code!r}): put its script code under "
            "'if __name__ == \"__main__\":'"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the submitter's module may raise anything
        raise ValidationError(f"importing '{name}' failed ({_describe(exc)})") from None


def _import_module(name: str) -> object:
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise NotFoundError(f"module file not found: {path}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ValidationError(f"cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(spec)
        registered = sys.modules.setdefault(path.stem, module) is module
        loader = spec.loader
        try:
            _run_import(name, lambda: loader.exec_module(module))
        except (NotFoundError, ValidationError):
            if registered:
                sys.modules.pop(path.stem, None)  # no half-initialised module left behind
            raise
        return module
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like 'python -m': modules in the current folder import
    return _run_import(name, lambda: importlib.import_module(name))


def build_from_spec(spec: str, kwargs: Mapping[str, object] | None = None) -> nn.Module:
    """``module:factory`` (or ``path/to/file.py:factory``) -> the module the factory returns."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValidationError(f"expected MODULE:FACTORY such as 'mynet:build_model', got '{spec}'")
    target: object = _import_module(module_name)
    for part in attr.split("."):
        if not hasattr(target, part):
            raise NotFoundError(f"'{module_name}' has no attribute '{attr}'")
        target = getattr(target, part)
    if isinstance(target, nn.Module):
        if kwargs:
            raise ValidationError(f"'{spec}' is a module instance, not a factory: it takes no kwargs")
        model = target
    elif callable(target):
        try:
            model = target(**dict(kwargs or {}))
        except Exception as exc:  # noqa: BLE001 - the submitter's factory may raise anything
            raise ValidationError(
                f"'{spec}' failed to build the model ({_describe(exc)}): fix the factory"
                + (" or its --kwargs" if kwargs else "")
            ) from None
    else:
        raise ValidationError(f"'{spec}' is neither a callable factory nor an nn.Module")
    if not isinstance(model, nn.Module):
        raise ValidationError(f"'{spec}' returned {type(model).__name__}, not a torch.nn.Module")
    return model


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a torch checkpoint (``torch.load(weights_only=True)``)."""
    if not path.is_file():
        raise NotFoundError(f"weights file not found: {path}")
    refuse_lfs_pointer(path, "--weights")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValidationError(f"{path} is not a valid safetensors file ({exc})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any reason the checkpoint cannot be read safely
        raise ValidationError(
            f"{path} cannot be read with torch.load(weights_only=True) ({' '.join(str(exc).split())[:300]}): "
            "save a plain state dict (torch.save(model.state_dict(), FILE)) or a safetensors file"
        ) from None
    for key in _STATE_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ValidationError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return obj


def module_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype ``model`` computes in: that of its first floating parameter or buffer, else float32."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def tolerance(dtype: torch.dtype) -> float:
    """The relative tolerance for comparing logits computed in ``dtype`` twice (see ``_TOLERANCE_ULPS``)."""
    return max(_MIN_TOLERANCE, _TOLERANCE_ULPS * torch.finfo(dtype).eps)


def export_program(
    model: nn.Module, input_size: Sequence[int], dtype: torch.dtype = torch.float32
) -> torch.export.ExportedProgram:
    """Export ``model`` (in eval mode) with a dynamic batch dimension, for inputs of ``dtype``."""
    example = torch.rand(EXPORT_BATCH, *input_size).to(dtype)
    batch = torch.export.Dim("batch", min=1)
    try:
        with torch.no_grad():
            return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:  # noqa: BLE001 - export failures come in many types
        detail = " ".join(str(exc).split())[:400]
        raise ValidationError(
            f"torch.export could not capture the model ({type(exc).__name__}: {detail}). The forward must "
            "take one image batch and return one logits tensor, without data-dependent Python control flow"
        ) from None


def pack(
    spec: str,
    out: Path,
    input_size: Sequence[int],
    *,
    weights: Path | None = None,
    factory_kwargs: Mapping[str, object] | None = None,
    num_classes: int | None = None,
    seed: int = 0,
) -> PackResult:
    """Build, export, save and verify; see the module docstring."""
    size = tuple(int(s) for s in input_size)
    if len(size) != 3 or any(s <= 0 for s in size):
        raise ValidationError(f"--input-size must be CHANNELS HEIGHT WIDTH, got {list(input_size)}")
    if out.suffix != ".pt2":
        raise ValidationError(f"--out must end in .pt2, got {out}")
    model = build_from_spec(spec, factory_kwargs)
    if weights is not None:
        load_state_dict_checked(model, read_weights(weights), str(weights))
    model = model.to("cpu").eval()
    dtype = module_dtype(model)
    gen = torch.Generator().manual_seed(seed)
    # Random images in [0, 1] cast to the model's dtype, as the wrapper casts its float32 images.
    probe = torch.rand((CHECK_BATCH, *size), generator=gen).to(dtype)
    with torch.no_grad():
        try:
            reference = model(probe)
        except Exception as exc:  # noqa: BLE001 - the submitter's forward may raise anything
            raise ValidationError(
                f"the model of '{spec}' fails on a batch of {CHECK_BATCH} random {_dtype_name(dtype)} images of size "
                f"{list(size)} ({_describe(exc)}): check --input-size, and that the forward takes one image batch "
                "and returns one logits tensor"
            ) from None
    if not isinstance(reference, torch.Tensor) or reference.dim() != 2 or reference.shape[0] != CHECK_BATCH:
        shape = list(reference.shape) if isinstance(reference, torch.Tensor) else type(reference).__name__
        raise ValidationError(
            f"the model returns {shape} for {CHECK_BATCH} images; expected [{CHECK_BATCH}, classes] logits"
        )
    if not reference.is_floating_point():
        raise ValidationError(
            f"the model returns {_dtype_name(reference.dtype)} values; expected floating-point logits"
        )
    if not bool(torch.isfinite(reference).all()):
        raise ValidationError(
            f"the model returns NaN or Inf logits for random {_dtype_name(dtype)} images of size {list(size)}"
            + (" (does it overflow in half precision?)" if dtype in (torch.float16, torch.bfloat16) else "")
        )
    classes = int(reference.shape[1])
    if num_classes is not None and classes != num_classes:
        raise ValidationError(f"the model returns {classes} logits per image, not --num-classes {num_classes}")

    program = export_program(model, size, dtype)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.packing-", dir=out.parent))
    except OSError as exc:
        raise ValidationError(f"cannot write {out} ({exc.strerror}): choose a writable --out") from None
    try:
        # Saved and checked beside --out, then renamed into place: a program that fails the checks, or a
        # pack that is interrupted, leaves no file (and an earlier --out as it was).
        written = staging / out.name
        torch.export.save(program, str(written))
        diff = _check_saved(written, out, spec, probe, reference, dtype)
        os.replace(written, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PackResult(
        path=out,
        sha256=sha256_file(out),
        size_bytes=out.stat().st_size,
        input_size=size,
        num_classes=classes,
        max_abs_diff=diff,
        dtype=dtype,
    )


def _check_saved(
    written: Path, out: Path, spec: str, probe: torch.Tensor, reference: torch.Tensor, dtype: torch.dtype
) -> float:
    """Load the saved program back through invarbench's checks; its max |logit difference| to the module."""
    reloaded = load_exported_module(written, f"packed file {out}", max(written.stat().st_size * 2, 1 << 20))
    with torch.no_grad():
        try:
            again = reloaded(probe)
        except Exception as exc:  # noqa: BLE001 - whatever the reason, the program is not the module
            raise ValidationError(
                f"the packed program fails where the module of '{spec}' ran ({_describe(exc)}): does the forward "
                "depend on state that export cannot capture?"
            ) from None
    diff = float((again.float() - reference.float()).abs().max()) if again.shape == reference.shape else float("inf")
    allowed = tolerance(dtype) * (1.0 + float(reference.float().abs().max()))
    if not diff <= allowed:  # also NaN
        raise ValidationError(
            f"the packed program disagrees with the original module (max |logit difference| {diff:.3g}, "
            f"{_dtype_name(dtype)} allows {allowed:.3g}): does the forward depend on state that export cannot "
            "capture (randomness, globals)?"
        )
    return diff


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
