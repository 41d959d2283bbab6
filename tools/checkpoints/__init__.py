"""What the conversion of public checkpoints does to each upstream file, per data set.

A :class:`Conversion` names the card it produces the weights of, the upstream file (under the
checkpoints folder, e.g. ``../shared/external/checkpoints/mnist/...``) and a ``select`` function
that turns the object ``torch.load(..., weights_only=True)`` returns into the flat state dict of
the card's registered architecture: take the state dict out of its container, drop the tensors
the upstream documents as training-only, rename keys. The card itself is the single record of
everything else: ``origin.sha256`` (checked before the file is read), ``architecture`` (the weights
must load into it strictly) and ``source.path`` (where the safetensors file goes).

Each data set has a module here (``mnist``, ``cifar10``) with a ``CONVERSIONS`` list;
``tools/convert_checkpoints.py`` runs them. The selection helpers below raise
:class:`ConversionError` (one line naming the problem) when the upstream object is not shaped as
expected, so that a changed upstream file fails loudly instead of converting to something else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

Selector = Callable[[Any], dict[str, torch.Tensor]]


class ConversionError(ValueError):
    """The upstream object is not what a conversion expects (one line: what and where)."""


@dataclass(frozen=True)
class Conversion:
    """One upstream checkpoint and the card whose weights it becomes.

    card: the card id ``<dataset>/<name>``; its YAML is ``<cards>/<dataset>/<name>.yaml``.
    upstream: the upstream file, relative to the checkpoints folder (``mnist/<file>``).
    select: the loaded object -> ``{key: tensor}`` in the architecture's parameter names.
    licence: the upstream licence's text, relative to the card's folder (``LICENSES/<repo>.txt``).
    """

    card: str
    upstream: str
    select: Selector
    licence: str

    @property
    def dataset(self) -> str:
        return self.card.split("/")[0]

    @property
    def name(self) -> str:
        return self.card.split("/")[1]


def tensors(obj: Any, where: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """``obj`` as a ``{str: tensor}`` dict, or :class:`ConversionError` if it is anything else."""
    if not isinstance(obj, Mapping) or not obj:
        raise ConversionError(f"{where} is a {type(obj).__name__}, not a non-empty mapping of tensors")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ConversionError(f"{where} holds entries that are not named tensors: {', '.join(bad[:5])}")
    return dict(obj)


def at(*path: str | int) -> Callable[[Any], Any]:
    """Step into a container: ``at("state_dict", 0)`` returns ``obj["state_dict"][0]``."""

    def step(obj: Any) -> Any:
        where = "the checkpoint"
        for key in path:
            try:
                obj = obj[key]
            except (KeyError, IndexError, TypeError):
                raise ConversionError(f"{where} has no entry {key!r}") from None
            where = f"{where}[{key!r}]"
        return obj

    return step


def drop(pattern: str) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """Remove the keys that match the regular expression ``pattern`` (at least one must match)."""
    regex = re.compile(pattern)

    def apply(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        kept = {k: v for k, v in state.items() if not regex.search(k)}
        if len(kept) == len(state):
            raise ConversionError(f"no key matches {pattern!r}, which the conversion documents as dropped")
        return kept

    return apply


def rename_prefixes(mapping: dict[str, str]) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """Replace each key's prefix by ``mapping[prefix]``; every key must start with exactly one prefix."""

    def apply(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            hits = [p for p in mapping if key.startswith(p)]
            if len(hits) != 1:
                raise ConversionError(f"key {key!r} matches {len(hits)} of the renamed prefixes, not exactly one")
            out[mapping[hits[0]] + key[len(hits[0]) :]] = value
        return out

    return apply


def pipeline(first: Callable[[Any], Any], *then: Callable[[Any], Any]) -> Selector:
    """``first``, then each of ``then`` in turn; the result must be a mapping of named tensors."""

    def run(obj: Any) -> dict[str, torch.Tensor]:
        state = tensors(first(obj))
        for step in then:
            state = tensors(step(state))
        return state

    return run


def whole_file(obj: Any) -> dict[str, torch.Tensor]:
    """The file is the state dict itself."""
    return tensors(obj)
