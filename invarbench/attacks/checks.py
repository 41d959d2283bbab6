"""Reliability checks (docs/measurements.md §4): flags that make a model's numbers untrustworthy as they stand.

Gradient-based attacks overestimate the robustness of a model whose gradients are masked or
obfuscated (Athalye et al., 2018; the AutoAttack ensemble of Croce and Hein, 2020, adds a
black-box attack for that reason; both in docs/measurements.md, References). The checks flag the
commonest causes. Images are float tensors ``[n, C, H, W]`` in [0, 1]; logits ``[n, classes]``.

On a batch of examples:

- ``randomized_outputs``: two identical forward passes of the batch differ somewhere by more
  than ``atol + rtol * |logit|`` (a randomised defence; attacks against it need expectation over
  transformation, EOT, as Athalye et al., 2018, discuss).
- ``probability_outputs``: for at least ``probability_fraction`` of the examples the outputs
  are all >= ``-probability_atol`` and sum to 1 within ``probability_atol``: the model returns
  probabilities, not logits (softmax on top saturates the loss). Log-probabilities are fine.
- ``zero_gradients``: the input gradient of the summed cross-entropy loss is exactly zero for
  more than ``zero_gradient_fraction`` of the examples (gradient masking, e.g. quantisation).
- ``nan_gradients``: that gradient has a NaN or Inf entry for more than
  ``nan_gradient_fraction`` of the examples.
- ``batch_dependent_outputs``: an example's logits depend on the rest of the batch: ``f(x)[i]``
  differs from ``f(x[i:i+1])``, or from the logits of ``x[i]`` in the batch in reverse order, by
  more than ``batch_atol + batch_rtol * |logit|`` (BatchNorm on batch statistics, e.g.
  ``track_running_stats=False``). Every number of such a model changes with the batch size.
  Not raised together with ``randomized_outputs``, whose outputs change from call to call anyway.

One flag is raised after the measurements, from their per-example values
(``invarbench.measurements.min_norm.flags``):

- ``gradient_attack_weaker_than_search``: the gradient-free boundary search found a smaller
  adversarial distance than FMN on more than a set share of the correctly classified examples.

NaN/Inf logits are an error, not a flag: :func:`invarbench.attacks.check_finite_logits`
raises :class:`~invarbench.errors.ModelOutputError` (docs/measurements.md §7).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from invarbench.attacks._tensors import check_finite_logits

FLAG_NAMES = ("randomized_outputs", "probability_outputs", "zero_gradients", "nan_gradients", "batch_dependent_outputs")
# What each flag means for a reader of the numbers (the site and the docs show these).
FLAG_DOCS = {
    "randomized_outputs": "two identical forward passes gave different logits: a randomised model, whose robustness "
    "needs attacks with expectation over transformation (EOT); these numbers may overstate it",
    "probability_outputs": "the model returns probabilities, not logits: a softmax on top saturates the attacks' loss, "
    "so the robust accuracies may be too high",
    "zero_gradients": "the input gradient is exactly zero for many examples (e.g. quantised inputs): gradient attacks "
    "cannot move, so the robust accuracies are likely too high",
    "nan_gradients": "the input gradient has NaN or Inf entries: gradient attacks fail on those examples, so the "
    "robust accuracies may be too high",
    "batch_dependent_outputs": "an example's logits depend on the other examples in its batch (e.g. BatchNorm on "
    "batch statistics): every number changes with the batch size",
}


@dataclass(frozen=True)
class ReliabilityConfig:
    """Tolerances and thresholds of the checks (see the module doc and docs/measurements.md §4);
    ``examples`` caps the batch. Tolerances are in logit (or probability) units, fractions are
    shares of the checked examples in [0, 1].

    Raises ``ValueError`` for ``examples < 1``, a fraction outside [0, 1] or a negative tolerance.
    """

    examples: int = 100
    randomness_atol: float = 1e-5
    randomness_rtol: float = 1e-4
    probability_atol: float = 1e-3
    probability_fraction: float = 0.9
    zero_gradient_fraction: float = 0.1
    nan_gradient_fraction: float = 0.0
    batch_atol: float = 1e-4
    batch_rtol: float = 1e-3
    # Read after the measurements (``gradient_attack_weaker_than_search``, see the module doc).
    search_beats_gradient_fraction: float = 0.1
    __pydantic_config__ = {"extra": "forbid"}  # a suite's ``checks:`` entry is validated against this class

    def __post_init__(self) -> None:
        if self.examples < 1:
            raise ValueError("the reliability checks need examples >= 1")
        for name in (
            "probability_fraction",
            "zero_gradient_fraction",
            "nan_gradient_fraction",
            "search_beats_gradient_fraction",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        for name in ("randomness_atol", "randomness_rtol", "probability_atol", "batch_atol", "batch_rtol"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


@dataclass(frozen=True)
class ReliabilityReport:
    """The measured quantities behind the flags, and the flags themselves (in FLAG_NAMES order).

    ``flags``: the raised flag names; ``max_output_change`` and ``max_batch_change``: largest
    absolute logit differences (logit units); ``probability_rows``, ``zero_gradient_examples``,
    ``nan_gradient_examples``: shares of the checked examples in [0, 1] (exact ratios of counts);
    ``examples``: how many examples were checked.
    """

    flags: tuple[str, ...]
    max_output_change: float  # largest |difference| between the two identical forward passes
    probability_rows: float  # fraction of examples whose outputs look like probabilities
    zero_gradient_examples: float  # fraction of examples with an all-zero input gradient
    nan_gradient_examples: float  # fraction of examples with a NaN/Inf input gradient entry
    max_batch_change: float  # largest |difference| between an example's logits in the batch, alone, reordered
    examples: int


def reliability_report(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: ReliabilityConfig = ReliabilityConfig(),
    *,
    generator: torch.Generator | None = None,  # noqa: ARG001 - the checks draw no random numbers
) -> ReliabilityReport:
    """Run the checks (docs/measurements.md §4) on the first ``cfg.examples`` examples of ``(x, y)``.

    ``x``: float images ``[n, C, H, W]`` in [0, 1]; ``y``: int64 labels ``[n]`` on ``x``'s device;
    ``model`` maps images to logits ``[n, classes]``. ``generator`` is accepted for a uniform
    signature; the checks draw no random numbers. Runs ``3 + n`` forward passes without a graph
    (the batch twice, each example alone, the batch reversed) and one forward and backward pass
    for the input gradient.

    Raises :class:`~invarbench.errors.ModelOutputError` on NaN/Inf logits (in any of the forward
    passes without a graph); the model's own exceptions propagate.
    """
    x = x[: cfg.examples].detach()
    y = y[: cfg.examples]
    n = int(x.shape[0])
    with torch.no_grad():
        first = model(x)
        check_finite_logits(first)
        second = model(x)
        check_finite_logits(second)
    diff = (first - second).abs()
    randomized = bool((diff > cfg.randomness_atol + cfg.randomness_rtol * first.abs()).any())

    batch_change, batch_dependent = _batch_dependence(model, x, first, cfg)

    tol = cfg.probability_atol
    prob_rows = (first >= -tol).all(dim=1) & ((first.sum(dim=1) - 1).abs() <= tol)
    # Shares as exact ratios of counts: a float32 mean makes 4/40 come out above 0.1.
    prob_share = int(prob_rows.sum()) / n

    xg = x.clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(xg)
        loss = F.cross_entropy(logits, y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xg)
    g = grad.flatten(1)
    bad = ~torch.isfinite(g).all(dim=1)
    zero = (g == 0).all(dim=1) & ~bad
    nan_share = int(bad.sum()) / n
    zero_share = int(zero.sum()) / n

    raised = {
        "randomized_outputs": randomized,
        "probability_outputs": prob_share >= cfg.probability_fraction,
        "zero_gradients": zero_share > cfg.zero_gradient_fraction,
        "nan_gradients": nan_share > cfg.nan_gradient_fraction,
        # Outputs that change from call to call also change between batches: that is the first flag.
        "batch_dependent_outputs": batch_dependent and not randomized,
    }
    return ReliabilityReport(
        flags=tuple(name for name in FLAG_NAMES if raised[name]),
        max_output_change=float(diff.max()) if diff.numel() else 0.0,
        probability_rows=prob_share,
        zero_gradient_examples=zero_share,
        nan_gradient_examples=nan_share,
        max_batch_change=batch_change,
        examples=n,
    )


def _batch_dependence(
    model: nn.Module, x: torch.Tensor, batched: torch.Tensor, cfg: ReliabilityConfig
) -> tuple[float, bool]:
    """The largest change of an example's logits between the batch ``x`` (giving ``batched``), the
    example alone, and the batch in reverse order; and whether it exceeds the tolerance."""
    with torch.no_grad():
        alone = torch.cat([model(x[i : i + 1]) for i in range(x.shape[0])])
        check_finite_logits(alone)
        reordered = model(x.flip(0)).flip(0)
        check_finite_logits(reordered)
    bound = cfg.batch_atol + cfg.batch_rtol * batched.abs()
    change = torch.maximum((alone - batched).abs(), (reordered - batched).abs())
    return (float(change.max()) if change.numel() else 0.0), bool((change > bound).any())


def reliability_flags(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: ReliabilityConfig = ReliabilityConfig(),
    *,
    generator: torch.Generator | None = None,
) -> list[str]:
    """The names of the raised flags (a subset of FLAG_NAMES, in that order); see the module doc
    and docs/measurements.md §4. Arguments and errors as :func:`reliability_report`."""
    return list(reliability_report(model, x, y, cfg, generator=generator).flags)
