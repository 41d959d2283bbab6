"""Exact text for numbers: the one encoding of floats used in the database's JSON and in exports.

Finite floats are written by ``repr`` (Python's ``json`` does this), the shortest decimal text
that reads back as the same double, so every number survives a round trip bit for bit. Strict
JSON has no NaN or infinity: those are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` and turned back into floats when read. (Stored values are numbers, booleans
and null, never these strings.)
"""

from __future__ import annotations

import math
from typing import Any

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _encode_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def encode_floats(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its string (lists, tuples and dicts walked)."""
    if isinstance(value, float):
        return _encode_float(value)
    if isinstance(value, dict):
        return {k: encode_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if all(type(v) in (int, bool) for v in value):  # the common case: labels, booleans
            return list(value)
        return [encode_floats(v) for v in value]
    return value


def decode_floats(value: Any) -> Any:
    """The inverse of :func:`encode_floats`."""
    if isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {k: decode_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        if all(type(v) in (int, bool, float) for v in value):
            return value
        return [decode_floats(v) for v in value]
    return value


def encode_number(value: float | None) -> float | str | None:
    """One float field for JSON: a number, null, or one of the three non-finite strings."""
    return None if value is None else _encode_float(float(value))


def decode_number(value: Any, field: str) -> float | None:
    """The inverse of :func:`encode_number`; ``field`` names the value in the error."""
    if value is None:
        return None
    if isinstance(value, str):
        if value in _NON_FINITE:
            return _NON_FINITE[value]
        raise ValueError(f"{field} must be a number, null, 'NaN', 'Infinity' or '-Infinity', got '{value}'")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{field} must be a number, got {value!r}")
    return float(value)
