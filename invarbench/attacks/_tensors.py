"""Small tensor helpers and constants that the attacks and the reliability checks share."""

from __future__ import annotations

import torch

from invarbench.errors import ModelOutputError

# The smallest norm or gap that pgd, loop.project (L2), minnorm and pathwidth divide by: a zero gradient,
# step or direction (or two equal confidences) gives a zero step, not NaN. A smaller value is raised to it.
DIVISOR_FLOOR = 1e-12
# What nspgd clamps its divisors to: each is zero only where a torch.where discards the quotient,
# so it keeps 0/0 out of that branch and never changes a divisor that is used.
MASKED_DIVISOR_FLOOR = 1e-30


def per_example(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-example vector ``v [n]`` shaped to broadcast over a batch ``like [n, ...]``."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def check_finite_logits(logits: torch.Tensor) -> None:
    """NaN or Inf logits make every number meaningless: an error, not a flag."""
    if not bool(torch.isfinite(logits).all()):
        bad = int((~torch.isfinite(logits)).any(dim=1).sum())
        raise ModelOutputError(f"the model returned NaN or Inf logits for {bad} of {logits.shape[0]} examples")
