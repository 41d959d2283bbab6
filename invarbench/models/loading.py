"""Loading a model named by a card (an I/O edge).

A submitted file is untrusted: its checksum is verified before anything is deserialised, and
only formats that cannot run code are accepted (safetensors weights with a registered
architecture; a ``torch.export`` program). Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from invarbench.cards.catalog import CardRef
from invarbench.errors import NotFoundError, ValidationError
from invarbench.models.architectures import build_architecture
from invarbench.models.wrapper import ModelWrapper

_STRIP_PREFIXES = ("module.", "model.")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_local_file(ref: CardRef) -> Path:
    """The weights file of a ``source.path`` card, checked to exist and to stay in the card's folder."""
    assert ref.card.source.path is not None
    folder = ref.folder.resolve()
    path = (folder / ref.card.source.path).resolve()
    if not path.is_relative_to(folder):
        raise ValidationError(f"model card {ref.path}: source.path must stay inside the card's folder")
    if not path.is_file():
        raise NotFoundError(f"model card {ref.path}: weights file not found: {path}")
    return path


def verify_sha256(path: Path, expected: str | None, where: str) -> str:
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise ValidationError(
            f"{where}: checksum mismatch for {path.name}: the card says sha256 {expected}, "
            f"the file has {actual}. The file is not the one the card registered; nothing was loaded."
        )
    return actual


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a common ``module.`` / ``model.`` prefix (DataParallel, wrappers) from every key."""
    for prefix in _STRIP_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_state_dict_checked(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    result = module.load_state_dict(strip_prefixes(state), strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"missing keys: {', '.join(result.missing_keys[:8])}"
                        + (" ..." if len(result.missing_keys) > 8 else ""))
    if result.unexpected_keys:
        problems.append(f"unexpected keys: {', '.join(result.unexpected_keys[:8])}"
                        + (" ..." if len(result.unexpected_keys) > 8 else ""))
    if problems:
        raise ValidationError(f"{where}: the weights do not match the architecture ({'; '.join(problems)})")


def _load_safetensors(path: Path, ref: CardRef) -> nn.Module:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    arch = ref.card.architecture
    assert arch is not None
    module = build_architecture(arch.name, **arch.kwargs)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ValidationError(f"model card {ref.path}: {path.name} is not a valid safetensors file ({exc})") from None
    try:
        load_state_dict_checked(module, state, f"model card {ref.path}")
    except RuntimeError as exc:  # shape mismatches
        raise ValidationError(f"model card {ref.path}: the weights do not fit the architecture: {exc}") from None
    return module


def _load_torch_export(path: Path, ref: CardRef) -> nn.Module:
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001 - any failure to read the archive is the file's fault
        raise ValidationError(f"model card {ref.path}: {path.name} is not a valid torch.export program ({exc})") from None
    return program.module()


def load_model(ref: CardRef, device: torch.device | str = "cpu") -> ModelWrapper:
    """Load, verify and wrap the model of ``ref`` on ``device``."""
    card = ref.card
    if card.source.hub is not None:
        from invarbench.models.hub import download_model_file

        path = download_model_file(card.source.hub, where=f"model card {ref.path}")
    else:
        path = resolve_local_file(ref)
        verify_sha256(path, card.source.sha256, f"model card {ref.path}")
    if card.format == "safetensors":
        module = _load_safetensors(path, ref)
    else:
        module = _load_torch_export(path, ref)
    pre = card.preprocessing
    wrapper = ModelWrapper(
        module, num_classes=card.num_classes, input_shape=pre.input_size, mean=pre.mean, std=pre.std
    ).to(device)
    wrapper.check_output_shape(device)
    return wrapper
