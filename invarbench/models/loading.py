"""Loading a model named by a card (an I/O edge).

A submitted file is untrusted. Its size is capped and its sha256 verified before anything
deserialises it, and only formats that cannot run code are accepted: those registered in
:data:`invarbench.cards.formats.FORMATS` (built in: ``safetensors`` weights for a registered
architecture, or a ``torch.export`` program checked by :mod:`invarbench.models.safe_export`;
:mod:`invarbench.models.formats`), each loaded by its entry's ``load``. Nothing is ever unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from invarbench.cards.catalog import CardRef
from invarbench.cards.checksum import sha256_file, verify_sha256
from invarbench.cards.formats import FORMATS
from invarbench.errors import NotFoundError, ValidationError
from invarbench.models.architectures import build_architecture
from invarbench.models.hub import max_file_bytes, too_large
from invarbench.models.wrapper import ModelWrapper

__all__ = [
    "LoadedModel",
    "load_model",
    "load_module",
    "load_safetensors",
    "load_torch_export",
    "model_file",
    "resolve_local_file",
    "sha256_file",
    "strip_prefixes",
    "load_state_dict_checked",
    "verify_sha256",
]

_STRIP_PREFIXES = ("module.", "model.")
# Batch-norm step counters only matter for training; checkpoints of old PyTorch versions lack them.
_OPTIONAL_SUFFIXES = (".num_batches_tracked",)
_SHOW_KEYS = 6


def _where(ref: CardRef) -> str:
    return f"model card {ref.path}"


def resolve_local_file(ref: CardRef) -> Path:
    """The weights file of a ``source.path`` card, checked to exist and to stay in the card's folder."""
    if ref.card.source.path is None:
        raise ValidationError(f"{_where(ref)}: the card has no local source.path")
    folder = ref.folder.resolve()
    path = (folder / ref.card.source.path).resolve()
    if not path.is_relative_to(folder):
        raise ValidationError(f"{_where(ref)}: source.path must stay inside the card's folder (it resolves to {path})")
    if not path.is_file():
        raise NotFoundError(f"{_where(ref)}: model file not found: {path}")
    return path


def model_file(ref: CardRef) -> Path:
    """The card's model file on disk: downloaded from the Hub or local; size-capped and checksummed."""
    hub = ref.card.source.hub
    if hub is not None:
        from invarbench.models.hub import download_model_file

        return download_model_file(hub, where=_where(ref))
    path = resolve_local_file(ref)
    limit = max_file_bytes()
    size = path.stat().st_size
    if size > limit:
        raise too_large(size, limit, _where(ref), path.name)
    verify_sha256(path, ref.card.source.sha256, _where(ref))
    return path


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a common ``module.`` / ``model.`` prefix (DataParallel, wrappers) from every key."""
    changed = True
    while changed and state:
        changed = False
        for prefix in _STRIP_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW_KEYS])
    return shown + (f" and {len(keys) - _SHOW_KEYS} more" if len(keys) > _SHOW_KEYS else "")


def load_state_dict_checked(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``module`` strictly, with one clear message for missing, unexpected or misshaped keys."""
    state = strip_prefixes(state)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(_OPTIONAL_SUFFIXES)]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} (file {tuple(state[k].shape)}, architecture {tuple(expected[k].shape)})"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if misshaped:
        problems.append(f"{len(misshaped)} keys of another shape: {_listing(misshaped)}")
    if problems:
        raise ValidationError(
            f"{where}: the weights do not match the architecture ({'; '.join(problems)}). Check "
            "architecture.name and its kwargs (e.g. num_classes, depth), or the checkpoint's key names"
        )
    non_float = [k for k, v in state.items() if expected[k].is_floating_point() and not v.is_floating_point()]
    if non_float:
        raise ValidationError(
            f"{where}: the weights hold integer tensors where the architecture has floats: {_listing(non_float)}"
        )
    module.load_state_dict(state, strict=False)  # strictness checked above; optional counters may be absent


def looks_pickled(path: Path) -> str | None:
    """Name the pickle-based format ``path`` starts like, if any (read as bytes, never unpickled)."""
    with open(path, "rb") as fh:
        head = fh.read(9)
    # A safetensors file is an 8-byte header length, then the JSON header: its first 8 bytes may be
    # anything (0x80 included), so only a file without the '{' at byte 8 is judged by its magic.
    if head[8:9] == b"{":
        return None
    if head[:1] == b"\x80":  # the PROTO opcode that starts every pickle of protocol 2 or later
        return "a pickle"
    if head[:4] == b"PK\x03\x04":  # torch.save writes a zip archive around its pickle
        return "a zip archive (torch.save writes those around a pickle)"
    return None


def load_safetensors(path: Path, ref: CardRef) -> nn.Module:
    """The ``safetensors`` format's loader: the card's architecture built with its kwargs, and the file's
    state dict loaded into it strictly. Raises :class:`ValidationError` for a pickle, a file that is not
    safetensors, or weights that do not fit the architecture."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    arch = ref.card.architecture
    if arch is None:  # the schema requires it; a guard for hand-built CardRefs
        raise ValidationError(f"{_where(ref)}: format 'safetensors' needs an 'architecture'")
    module = build_architecture(arch.name, **arch.kwargs)
    pickled = looks_pickled(path)
    if pickled:
        raise ValidationError(
            f"{_where(ref)}: {path.name} is {pickled}, not a safetensors file: invarbench never unpickles a "
            "submitted file. Convert the state dict with safetensors.torch.save_file, or use 'invarbench pack'"
        )
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValidationError(
            f"{_where(ref)}: {path.name} is not a valid safetensors file ({' '.join(str(exc).split())}). "
            "Pickled checkpoints (.pt, .pth, .bin) are never loaded: convert the state dict with "
            "safetensors.torch.save_file, or use 'invarbench pack'"
        ) from None
    load_state_dict_checked(module, state, _where(ref))
    return module


def load_torch_export(path: Path, ref: CardRef) -> nn.Module:
    """The ``torch-export`` format's loader: the program checked by :mod:`invarbench.models.safe_export`."""
    from invarbench.models.safe_export import load_exported_module

    return load_exported_module(path, _where(ref), max_file_bytes())


def load_module(path: Path, ref: CardRef) -> nn.Module:
    """Deserialise the (already verified) file at ``path`` with the ``load`` of the card's registered format.
    Raises :class:`NotFoundError` for a format that is not registered (a hand-built CardRef: the schema
    refuses it), else what the format's loader raises."""
    return FORMATS.get(ref.card.format).load(path, ref)


@dataclass(frozen=True)
class LoadedModel:
    """A card's model, loaded: the ``wrapper`` every measurement sees, the model file's ``file_sha256``
    (verified against the card before anything deserialised the file), and the card as it was read
    (``card_bytes``, whose sha256 is ``card_sha256``): a run stores exactly these, never re-reading or
    re-hashing a file."""

    wrapper: ModelWrapper
    file_sha256: str
    card_bytes: bytes
    card_sha256: str


def load_model(ref: CardRef, device: torch.device | str = "cpu") -> LoadedModel:
    """Load, verify and wrap the model of ``ref`` on ``device``; check its logits' shape.

    Raises :class:`ValidationError` (checksum, format, weights), :class:`NotFoundError` (missing file)
    or :class:`ModelOutputError` (logits of the wrong shape or dtype), each naming the card."""
    card = ref.card
    module = load_module(model_file(ref), ref)
    pre = card.preprocessing
    wrapper = ModelWrapper(
        module, num_classes=card.num_classes, input_shape=pre.input_size, mean=pre.mean, std=pre.std
    ).to(device)
    wrapper.check_output_shape(device, where=_where(ref))
    verified = card.source.hub.sha256 if card.source.hub is not None else card.source.sha256  # model_file checked it
    return LoadedModel(wrapper=wrapper, file_sha256=verified, card_bytes=ref.raw, card_sha256=ref.sha256)
