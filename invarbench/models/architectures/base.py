"""The architecture registry and its namespaces; :mod:`invarbench.models.architectures` re-exports it and
imports the modules that register into it (each imports this module, not the package)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from torch import nn

from invarbench.errors import NotFoundError, ValidationError
from invarbench.registry import Registry, did_you_mean

ArchitectureFactory = Callable[..., nn.Module]

ARCHITECTURES: Registry[ArchitectureFactory] = Registry("architecture")

# namespace -> module that provides ``factory(name)`` and ``names()`` for ``<namespace>/<name>``
_NAMESPACES = {
    "torchvision": "invarbench.models.architectures.torchvision_models",
    "timm": "invarbench.models.architectures.timm_models",
}


def _namespace_module(namespace: str):  # a module object
    return importlib.import_module(_NAMESPACES[namespace])


def unknown_in_namespace(namespace: str, name: str, known: list[str], *, like: str, listing: str) -> NotFoundError:
    """The error for ``<namespace>/<name>`` that the library does not have (suggesting names like ``like``)."""
    return NotFoundError(
        f"unknown architecture '{namespace}/{name}'.{did_you_mean(like, known)} "
        f"Run 'invarbench cards architectures' to list {listing}."
    )


def namespaced_factory(
    namespace: str, name: str, create: Callable[..., nn.Module], refused_kwargs: tuple[str, ...]
) -> ArchitectureFactory:
    """The factory for ``<namespace>/<name>``: ``create(**kwargs)``, refusing the kwargs that would
    make the library fetch weights (the weights always come from the card's own file)."""

    def build(**kwargs: object) -> nn.Module:
        refused = [k for k in refused_kwargs if k in kwargs]
        if refused:
            raise ValidationError(
                f"architecture '{namespace}/{name}': remove {', '.join(refused)} from its kwargs: "
                "the weights come from the card's own file"
            )
        return create(**kwargs)

    build.__doc__ = f"{namespace}'s {name}."
    return build


def get_architecture(name: str) -> ArchitectureFactory:
    """The factory registered as ``name`` (or ``torchvision/...``, ``timm/...``), with a clear error."""
    if name in ARCHITECTURES:
        return ARCHITECTURES.get(name)
    namespace, sep, rest = name.partition("/")
    if sep and namespace in _NAMESPACES:
        return _namespace_module(namespace).factory(rest)
    known = ARCHITECTURES.names()
    raise NotFoundError(
        f"unknown architecture '{name}'.{did_you_mean(name, known)} Registered: {', '.join(known)}; "
        "also 'torchvision/<model>' and 'timm/<model>' (run 'invarbench cards architectures' to list them all)."
    )


def check_architecture_kwargs(name: str, kwargs: dict[str, object]) -> None:
    """Check that ``name`` exists and accepts ``kwargs``, without building it."""
    factory = get_architecture(name)
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return  # torchvision/timm factories take the model's own keyword arguments
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        raise ValidationError(f"architecture '{name}' does not accept these arguments: {exc}") from None


def build_architecture(name: str, **kwargs: object) -> nn.Module:
    """Build the registered architecture ``name`` with ``kwargs`` (clear error on bad kwargs)."""
    factory = get_architecture(name)
    check_architecture_kwargs(name, kwargs)
    try:
        module = factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"architecture '{name}' does not accept these arguments: {exc}") from None
    if not isinstance(module, nn.Module):  # pragma: no cover - a programming error in a factory
        raise TypeError(f"architecture factory '{name}' returned {type(module).__name__}, not an nn.Module")
    return module


def describe(factory: ArchitectureFactory) -> str:
    """The first line of a factory's docstring."""
    doc = inspect.getdoc(factory) or ""
    return doc.splitlines()[0] if doc else ""


def architecture_table(*, include_namespaces: bool = True) -> list[tuple[str, str]]:
    """``(name, description)`` of every architecture; namespaced ones when their library is installed."""
    rows = [(name, describe(ARCHITECTURES.get(name))) for name in ARCHITECTURES.names()]
    if include_namespaces:
        for namespace in _NAMESPACES:
            module = _namespace_module(namespace)
            rows.extend((f"{namespace}/{n}", module.DESCRIPTION) for n in module.names())
    return rows
