"""``torchvision/<name>``: torchvision's classification models, built without pretrained weights.

The weights always come from the card's own file; a card cannot ask torchvision to download
any. Parameter names are torchvision's own, so checkpoints trained from
``torchvision.models.<name>(...)`` load unchanged (e.g. the ImageNet entries of RobustBench
that wrap a torchvision ResNet-50, after the ``model.`` prefix is stripped).
"""

from __future__ import annotations

import functools

from torch import nn

from invarbench.errors import NotFoundError, ValidationError
from invarbench.registry import did_you_mean

DESCRIPTION = "torchvision classification model (no pretrained weights; kwargs go to its constructor)"
_REFUSED_KWARGS = ("weights", "weights_backbone")


@functools.cache
def names() -> list[str]:
    import torchvision.models

    return sorted(torchvision.models.list_models(module=torchvision.models))


def factory(name: str):  # noqa: ANN201 - an architecture factory
    """The factory for ``torchvision/<name>``."""
    if name not in names():
        raise NotFoundError(
            f"unknown architecture 'torchvision/{name}'.{did_you_mean(name, names())} "
            "Run 'invarbench cards architectures' to list torchvision's classification models."
        )

    def build(**kwargs: object) -> nn.Module:
        import torchvision.models

        refused = [k for k in _REFUSED_KWARGS if k in kwargs]
        if refused:
            raise ValidationError(
                f"architecture 'torchvision/{name}': remove {', '.join(refused)} from its kwargs: "
                "the weights come from the card's own file"
            )
        return torchvision.models.get_model(name, weights=None, **kwargs)

    build.__doc__ = f"torchvision's {name}."
    return build
