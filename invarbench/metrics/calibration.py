"""Clean expected calibration error (ECE) with equal-width confidence bins (docs/measurements.md §5).

ECE is the measure of Naeini et al. (2015); equal-width bins as Guo et al. (2017) use them (15
by default, as theirs). Both papers are listed in full under the References of
docs/measurements.md.

Confidence is the top softmax probability, correctness whether its class is the label. Bin
``b`` (of ``n_bins``) holds the confidences in ``(b / n_bins, (b + 1) / n_bins]`` (a confidence
of exactly 0 goes to the first bin), and

    ECE = sum_b (n_b / N) * |accuracy_b - mean confidence_b|

over the non-empty bins. The per-example pair (confidence, correct) is all ECE needs, so it can
be computed batch by batch and aggregated later.
"""

from __future__ import annotations

import torch


def batched_ece(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int = 15) -> torch.Tensor:
    """ECE of every row of ``confidence [B, n]`` / ``correct [B, n]`` (float64 ``[B]``).

    ``confidence``: floats in [0, 1] (cast to float64); ``correct``: bool (or 0/1), same shape.
    Each row has its own ``n_bins`` bins ``(b / n_bins, (b + 1) / n_bins]`` (see the module doc;
    Naeini et al., 2015; docs/measurements.md §5); ``n == 0`` gives NaN per row. Raises
    ``ValueError`` for ``n_bins < 1``."""
    if n_bins < 1:
        raise ValueError("ECE needs n_bins >= 1")
    conf = confidence.detach().to(torch.float64)
    ok = correct.detach().to(torch.float64)
    rows, n = conf.shape
    if n == 0:
        return torch.full((rows,), float("nan"), dtype=torch.float64, device=conf.device)
    b = (torch.ceil(conf * n_bins).long() - 1).clamp_(0, n_bins - 1)
    b = b + n_bins * torch.arange(rows, device=conf.device)[:, None]  # one set of bins per row
    gap = torch.zeros(rows * n_bins, dtype=torch.float64, device=conf.device)
    gap.index_add_(0, b.flatten(), (ok - conf).flatten())
    return gap.view(rows, n_bins).abs().sum(dim=1) / n


def ece_from_confidence(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int = 15) -> float:
    """ECE of per-example confidences in [0, 1] and correctness booleans (see the module doc).

    ``confidence`` and ``correct``: aligned tensors of any shape (flattened), one entry per
    example. Returns a Python float in [0, 1]; NaN when empty. Raises ``ValueError`` for
    ``n_bins < 1`` (docs/measurements.md §5)."""
    return float(batched_ece(confidence.flatten()[None], correct.flatten()[None], n_bins)[0])
