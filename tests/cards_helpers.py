"""Helpers for the card, Hub, format and pack tests: cards, tiny models, a Hub cache, hostile files."""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import json
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from safetensors.torch import save, save_file

from invarbench.models.architectures import build_architecture

REVISION = "0123456789abcdef0123456789abcdef01234567"
REPO_ID = "someone/tiny-lenet"
# A tiny LeNet on 8x8 single-channel images: fast to build, export and run.
TINY_ARCH = {"num_classes": 3, "in_channels": 1, "input_size": 8, "channels": [2, 4], "hidden": 8}
TINY_INPUT = [1, 8, 8]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_architecture("lenet", **TINY_ARCH).eval()


def safetensors_bytes(model: torch.nn.Module, prefix: str = "") -> bytes:
    """The model's state dict as safetensors bytes, every key prefixed with ``prefix``."""
    return save({prefix + k: v.contiguous() for k, v in model.state_dict().items()})


@functools.cache
def tiny_pt2_bytes(seed: int = 0) -> bytes:
    """The tiny model exported with a dynamic batch dimension (cached: export takes a second)."""
    model = tiny_model(seed)
    program = torch.export.export(
        model, (torch.rand(2, *TINY_INPUT),), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},)
    )
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def card_dict(**overrides: object) -> dict:
    """A valid safetensors card for ``mnist5k/tiny`` with a local file; ``overrides`` replace top-level fields."""
    data = {
        "schema_version": 1,
        "id": "mnist5k/tiny",
        "name": "Tiny LeNet",
        "dataset": "mnist5k",
        "num_classes": 3,
        "source": {"path": "tiny.safetensors", "sha256": "0" * 64},
        "format": "safetensors",
        "architecture": {"name": "lenet", "kwargs": dict(TINY_ARCH)},
        "preprocessing": {"input_size": list(TINY_INPUT)},
        "training": {"method": "standard"},
        "license": "MIT",
        "submitted_by": "tests",
    }
    data.update(copy.deepcopy(overrides))
    return data


def write_card(root: Path, data: dict, model_bytes: bytes | None = None, *, file_name: str | None = None) -> Path:
    """Write ``data`` to ``root/<dataset>/<name>.yaml`` and, if given, the model file next to it
    (its sha256 is filled in for a local source)."""
    dataset, name = data["id"].split("/")
    folder = root / dataset
    folder.mkdir(parents=True, exist_ok=True)
    if model_bytes is not None:
        target = file_name or data["source"].get("path")
        (folder / target).write_bytes(model_bytes)
        if "path" in data["source"]:
            data = {**data, "source": {**data["source"], "sha256": sha256_bytes(model_bytes)}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def make_hub_cache(cache: Path, repo_id: str, revision: str, files: dict[str, bytes], ref: str = "main") -> Path:
    """Lay out a Hugging Face Hub cache as huggingface_hub documents it:
    ``models--ORG--NAME/{blobs/<hash>, snapshots/<commit>/<file> -> ../../blobs/<hash>, refs/<ref>}``."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(revision)
    for name, data in files.items():
        blob = repo / "blobs" / sha256_bytes(data)
        blob.write_bytes(data)
        link = repo / "snapshots" / revision / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return repo


class SideEffect:
    """Unpickling this object writes ``marker``: a stand-in for an attacker's payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('unpickled')",))


def pickle_payload(marker: Path) -> bytes:
    return pickle.dumps(SideEffect(marker))


def torch_save_payload(marker: Path) -> bytes:
    """A torch.save archive whose unpickling (weights_only=False) writes ``marker``."""
    buf = io.BytesIO()
    torch.save({"weight": SideEffect(marker)}, buf)
    return buf.getvalue()


def rewrite_pt2(data: bytes, edit: Callable[[dict[str, bytes]], None]) -> bytes:
    """Apply ``edit`` to the entries of a .pt2 archive (names relative to its top folder)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    root = src.namelist()[0].split("/", 1)[0]
    entries = {n.split("/", 1)[1]: src.read(n) for n in src.namelist()}
    edit(entries)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for name, content in entries.items():
            dst.writestr(f"{root}/{name}", content)
    return out.getvalue()


def edit_program(edit: Callable[[dict], None]) -> Callable[[dict[str, bytes]], None]:
    """An ``edit`` for :func:`rewrite_pt2` that changes the program JSON."""

    def apply(entries: dict[str, bytes]) -> None:
        program = json.loads(entries["models/model.json"])
        edit(program)
        entries["models/model.json"] = json.dumps(program).encode()

    return apply


def edit_json(name: str, edit: Callable[[dict], None]) -> Callable[[dict[str, bytes]], None]:
    def apply(entries: dict[str, bytes]) -> None:
        doc = json.loads(entries[name])
        edit(doc)
        entries[name] = json.dumps(doc).encode()

    return apply


def save_safetensors(model: torch.nn.Module, path: Path) -> None:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


# --- cards that also pass the data-set checks of 'cards validate' (mnist5k: 10 classes, 1x28x28) ---

MNIST_INPUT = [1, 28, 28]


def mnist_model(seed: int = 0) -> torch.nn.Module:
    """The registered LeNet at mnist5k's size (215k parameters)."""
    torch.manual_seed(seed)
    return build_architecture("lenet").eval()


def mnist_card_dict(name: str = "tiny", **overrides: object) -> dict:
    """A card for ``mnist5k/<name>`` that agrees with the data set (safetensors, local file ``<name>.safetensors``)."""
    data = card_dict(
        id=f"mnist5k/{name}",
        num_classes=10,
        architecture={"name": "lenet", "kwargs": {}},
        preprocessing={"input_size": list(MNIST_INPUT)},
        source={"path": f"{name}.safetensors", "sha256": "0" * 64},
    )
    data.update(copy.deepcopy(overrides))
    return data


def hub_card_dict(
    name: str, file: str, sha256: str, *, fmt: str = "torch-export", repo_id: str = REPO_ID, revision: str = REVISION
) -> dict:
    """A tiny-model card for ``mnist5k/<name>`` whose file is ``file`` of ``repo_id`` at ``revision``."""
    data = card_dict(
        id=f"mnist5k/{name}",
        format=fmt,
        source={"hub": {"repo_id": repo_id, "revision": revision, "file": file, "sha256": sha256}},
    )
    if fmt == "torch-export":
        del data["architecture"]
    return data
