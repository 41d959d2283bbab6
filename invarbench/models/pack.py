"""Packing a submitter's own model into a ``torch.export`` program (``invarbench pack``).

This runs the submitter's code, on the submitter's machine: that is its purpose. It imports
``module:factory``, builds the model, loads its weights (safetensors, or a torch checkpoint
read with ``torch.load(weights_only=True)``), exports it in eval mode with a dynamic batch
dimension, saves the program with ``torch.export.save``, then loads the file back through the
same checks invarbench applies to submissions and compares its logits with the original
module's. The result carries the sha256 for the card.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from invarbench.errors import NotFoundError, ValidationError
from invarbench.models.files import sha256_file
from invarbench.models.loading import load_state_dict_checked
from invarbench.models.safe_export import load_exported_module

_STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "network")
EXPORT_BATCH = 2  # torch.export specialises sizes 0 and 1, so trace with 2
CHECK_BATCH = 3  # ... and check with another size, to prove the batch dimension is dynamic


@dataclass(frozen=True)
class PackResult:
    path: Path
    sha256: str
    size_bytes: int
    input_size: tuple[int, int, int]
    num_classes: int
    max_abs_diff: float  # between the original module and the reloaded program on random inputs


def _import_module(name: str) -> object:
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise NotFoundError(f"module file not found: {path}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ValidationError(f"cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(path.stem, module)
        spec.loader.exec_module(module)
        return module
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like 'python -m': modules in the current folder import
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise NotFoundError(f"cannot import module '{name}': {exc}") from None


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
        model = target(**dict(kwargs or {}))
    else:
        raise ValidationError(f"'{spec}' is neither a callable factory nor an nn.Module")
    if not isinstance(model, nn.Module):
        raise ValidationError(f"'{spec}' returned {type(model).__name__}, not a torch.nn.Module")
    return model


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a torch checkpoint (``torch.load(weights_only=True)``)."""
    if not path.is_file():
        raise NotFoundError(f"weights file not found: {path}")
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


def export_program(model: nn.Module, input_size: Sequence[int]) -> torch.export.ExportedProgram:
    """Export ``model`` (in eval mode) with a dynamic batch dimension."""
    example = torch.rand(EXPORT_BATCH, *input_size)
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
    gen = torch.Generator().manual_seed(seed)
    probe = torch.rand((CHECK_BATCH, *size), generator=gen)
    with torch.no_grad():
        reference = model(probe)
    if not isinstance(reference, torch.Tensor) or reference.dim() != 2 or reference.shape[0] != CHECK_BATCH:
        shape = list(reference.shape) if isinstance(reference, torch.Tensor) else type(reference).__name__
        raise ValidationError(f"the model returns {shape} for {CHECK_BATCH} images; expected [{CHECK_BATCH}, classes] logits")
    classes = int(reference.shape[1])
    if num_classes is not None and classes != num_classes:
        raise ValidationError(f"the model returns {classes} logits per image, not --num-classes {num_classes}")

    program = export_program(model, size)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(out))

    reloaded = load_exported_module(out, f"packed file {out}", max(out.stat().st_size * 2, 1 << 20))
    with torch.no_grad():
        again = reloaded(probe)
    diff = float((again - reference).abs().max())
    tolerance = 1e-4 * (1.0 + float(reference.abs().max()))
    if again.shape != reference.shape or diff > tolerance:
        raise ValidationError(
            f"the packed program disagrees with the original module (max |logit difference| {diff:.3g}): "
            "does the forward depend on state that export cannot capture (randomness, globals)?"
        )
    return PackResult(path=out, sha256=sha256_file(out), size_bytes=out.stat().st_size, input_size=size,
                      num_classes=classes, max_abs_diff=diff)
