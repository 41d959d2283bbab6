"""Architectures by name: a card with ``format: safetensors`` names one and its keyword arguments.

Each module in this package ends with small registered factory functions that only hold a
variant's arguments (their docstring's first line is the description ``invarbench cards
architectures`` prints). Two namespaces are resolved on demand, so that importing this package
stays cheap: ``torchvision/<name>`` (any torchvision classification model) and ``timm/<name>``
(any timm model, when the optional ``timm`` extra is installed).

Parameter names follow the public checkpoints of each family (see ``docs/model-cards.md``), so
that a published state dict loads without renaming.
"""

from invarbench.models.architectures.base import (
    ARCHITECTURES,
    ArchitectureFactory,
    architecture_table,
    build_architecture,
    check_architecture_kwargs,
    describe,
    get_architecture,
    namespaced_factory,
    unknown_in_namespace,
)

# Importing the modules registers their architectures (explicitly, in this order).
from invarbench.models.architectures import mnist  # noqa: F401  isort: skip
from invarbench.models.architectures import cifar_resnet  # noqa: F401  isort: skip
from invarbench.models.architectures import preact_resnet  # noqa: F401  isort: skip
from invarbench.models.architectures import wide_resnet  # noqa: F401  isort: skip
from invarbench.models.architectures import verification_mnist  # noqa: F401  isort: skip
from invarbench.models.architectures import verification_cifar  # noqa: F401  isort: skip

__all__ = [
    "ARCHITECTURES",
    "ArchitectureFactory",
    "architecture_table",
    "build_architecture",
    "check_architecture_kwargs",
    "describe",
    "get_architecture",
    "namespaced_factory",
    "unknown_in_namespace",
]
