"""The built-in model formats, registered in :data:`invarbench.cards.formats.FORMATS`.

``safetensors``: the weights of a registered architecture (a state dict, nothing that runs code);
``torch-export``: a ``torch.export`` program checked by :mod:`invarbench.models.safe_export` before it
runs (``invarbench pack`` writes one). Each entry's ``load`` is in :mod:`invarbench.models.loading`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invarbench.cards.formats import ModelFormat, register_format


def _safetensors(path: Path, ref: Any) -> Any:
    from invarbench.models.loading import load_safetensors

    return load_safetensors(path, ref)


def _torch_export(path: Path, ref: Any) -> Any:
    from invarbench.models.loading import load_torch_export

    return load_torch_export(path, ref)


SAFETENSORS = register_format(
    ModelFormat(
        name="safetensors",
        suffix=".safetensors",
        needs_architecture=True,
        description="the weights (a state dict) of a registered architecture",
        load=_safetensors,
    )
)
TORCH_EXPORT = register_format(
    ModelFormat(
        name="torch-export",
        suffix=".pt2",
        needs_architecture=False,
        description="a torch.export program with its own graph, checked before it runs ('invarbench pack')",
        load=_torch_export,
    )
)
