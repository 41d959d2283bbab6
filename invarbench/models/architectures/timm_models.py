"""``timm/<name>``: timm's models (optional: ``pip install 'invarbench[timm]'``), without pretrained weights.

The weights always come from the card's own file: ``pretrained``, ``checkpoint_path`` and
Hub-hosted model names (``hf-hub:...``, ``hf_hub:...``) are refused, so building a timm model
never downloads or reads anything. Parameter names are timm's own.
"""

from __future__ import annotations

import functools
import re

from invarbench.errors import NotFoundError
from invarbench.models.architectures.base import namespaced_factory, unknown_in_namespace

DESCRIPTION = "timm model (no pretrained weights; kwargs go to timm.create_model)"
_REFUSED_KWARGS = ("pretrained", "checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.]+$")


def _timm():  # the timm module
    try:
        import timm
    except ImportError:
        raise NotFoundError(
            "timm architectures need the optional timm package: pip install 'invarbench[timm]'"
        ) from None
    return timm


def available() -> bool:
    try:
        import timm  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def names() -> list[str]:
    """timm's model names; empty when timm is not installed."""
    if not available():
        return []
    return sorted(_timm().list_models())


def factory(name: str):  # an architecture factory
    """The factory for ``timm/<name>`` (``name`` may carry a pretrained tag such as ``resnet18.a1_in1k``)."""
    timm = _timm()
    base = name.split(".", 1)[0]
    if not _NAME_RE.match(name) or not timm.is_model(base):
        raise unknown_in_namespace("timm", name, names(), like=base, listing="timm's models")
    return namespaced_factory(
        "timm", name, lambda **kwargs: timm.create_model(base, pretrained=False, **kwargs), _REFUSED_KWARGS
    )
