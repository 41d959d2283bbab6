"""``torchvision/<name>``: torchvision's classification models, built without pretrained weights.

The weights always come from the card's own file; a card cannot ask torchvision to download
any. Parameter names are torchvision's own, so checkpoints trained from
``torchvision.models.<name>(...)`` load unchanged (e.g. the ImageNet entries of RobustBench
that wrap a torchvision ResNet-50, after the ``model.`` prefix is stripped).
"""

from __future__ import annotations

import functools

from torch import nn

from invarbench.models.architectures.base import namespaced_factory, unknown_in_namespace

DESCRIPTION = "torchvision classification model (no pretrained weights; kwargs go to its constructor)"
_REFUSED_KWARGS = ("weights", "weights_backbone")


@functools.cache
def names() -> list[str]:
    import torchvision.models

    return sorted(torchvision.models.list_models(module=torchvision.models))


def factory(name: str):  # an architecture factory
    """The factory for ``torchvision/<name>``."""
    if name not in names():
        raise unknown_in_namespace(
            "torchvision", name, names(), like=name, listing="torchvision's classification models"
        )

    def create(**kwargs: object) -> nn.Module:
        import torchvision.models

        return torchvision.models.get_model(name, weights=None, **kwargs)

    return namespaced_factory("torchvision", name, create, _REFUSED_KWARGS)
