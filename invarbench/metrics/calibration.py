"""Clean expected calibration error (ECE) with equal-width confidence bins.

Confidence is the top softmax probability, correctness whether its class is the label. Bin
``b`` (of ``n_bins``) holds the confidences in ``(b / n_bins, (b + 1) / n_bins]`` (a confidence
of exactly 0 goes to the first bin), and

    ECE = sum_b (n_b / N) * |accuracy_b - mean confidence_b|

over the non-empty bins. The per-example pair (confidence, correct) is all ECE needs, so it can
be computed batch by batch and aggregated later.
"""

from __future__ import annotations

import torch


def confidence_and_correct(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: the top softmax probability of ``logits`` and whether its class is ``labels``."""
    probs = torch.softmax(logits.detach().float(), dim=1)
    conf, pred = probs.max(dim=1)
    return conf, pred == labels


def batched_ece(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int = 15) -> torch.Tensor:
    """ECE of every row of ``confidence [B, n]`` / ``correct [B, n]`` (float64 ``[B]``)."""
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
    """ECE of per-example confidences in [0, 1] and correctness booleans (see the module doc)."""
    return float(batched_ece(confidence.flatten()[None], correct.flatten()[None], n_bins)[0])


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """ECE of a model's ``logits`` on ``labels`` with ``n_bins`` equal-width bins."""
    conf, correct = confidence_and_correct(logits, labels)
    return ece_from_confidence(conf, correct, n_bins)
