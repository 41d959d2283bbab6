"""Architectures by name: ``ARCHITECTURES.get(name)(**kwargs)`` builds an ``nn.Module``.

Each module in this package registers small factory functions that only hold a variant's
arguments. A card with ``format: safetensors`` names one of them and its keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from invarbench.registry import Registry

ArchitectureFactory = Callable[..., nn.Module]

ARCHITECTURES: Registry[ArchitectureFactory] = Registry("architecture")


def build_architecture(name: str, **kwargs: object) -> nn.Module:
    """Build the registered architecture ``name`` with ``kwargs`` (clear error on bad kwargs)."""
    from invarbench.errors import ValidationError

    factory = ARCHITECTURES.get(name)
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ValidationError(f"architecture '{name}' does not accept these arguments: {exc}") from None


# Importing the modules registers their architectures.
from invarbench.models.architectures import mnist  # noqa: E402,F401
