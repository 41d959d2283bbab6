"""Small tensor helpers that the attacks share."""

from __future__ import annotations

import torch


def per_example(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-example vector ``v [n]`` shaped to broadcast over a batch ``like [n, ...]``."""
    return v.view(-1, *([1] * (like.dim() - 1)))
