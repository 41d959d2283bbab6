"""invarbench.metrics.stats and invarbench.metrics.calibration against textbook values and
independent computations (docs/measurements.md §5 and §6).

- The Wilson score interval against the published values of Newcombe (1998), Table I.
- The bootstrap against an independent numpy computation on the same resampling indices, and
  against bootstrap distributions small enough to enumerate exactly.
- ECE on a hand-computed example whose answer depends on which side of a bin edge a confidence
  falls, and on taking the gap per bin (not per example).
- The median helper: odd and even counts, ``inf``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from invarbench.metrics.calibration import (
    batched_ece,
    ece_from_confidence,
)
from invarbench.metrics.stats import (
    DEFAULT_RESAMPLES,
    bootstrap,
    ece_metric,
    mean_metric,
    median,
    median_metric,
    proportion_metric,
    wilson_interval,
)

Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal


# --- Wilson score interval -----------------------------------------------------------------------
# Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of seven
# methods", Statistics in Medicine 17:857-872, Table I, method 3 (score interval without
# continuity correction), 95 %. Each pair was also checked by hand from Wilson's formula
# (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n) with z = 1.96:
#   81/263: 0.255289, 0.366210    15/148: 0.062386, 0.160487
#    0/20:  0,        0.161125     1/29:  0.006113, 0.171755
NEWCOMBE_TABLE_I = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
]


@pytest.mark.parametrize(("k", "n", "low", "high"), NEWCOMBE_TABLE_I)
def test_wilson_interval_matches_newcombe_table_one(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


def test_wilson_interval_closed_forms_and_edges():
    # Zero successes: [0, z² / (n + z²)]; all successes: [n / (n + z²), 1] (exactly 0 and 1).
    for n in (1, 5, 40):
        assert wilson_interval(0, n) == (0.0, pytest.approx(Z95**2 / (n + Z95**2), rel=1e-12))
        assert wilson_interval(n, n) == (pytest.approx(n / (n + Z95**2), rel=1e-12), 1.0)
    # Half the trials: symmetric around 1/2. 50/100 -> 0.5 ± 1.96 sqrt(0.25/100 + 1.96²/40000) / 1.0384.
    lo, hi = wilson_interval(50, 100)
    assert lo + hi == pytest.approx(1.0, abs=1e-15)
    assert hi == pytest.approx(0.5 + Z95 * math.sqrt(0.0025 + Z95**2 / 40_000) / (1 + Z95**2 / 100), rel=1e-12)
    # A wider z gives a wider interval; n = 0 gives NaN.
    lo1, hi1 = wilson_interval(81, 263, z=1.0)
    assert lo < 0.5 < hi and 0.2553 < lo1 < 81 / 263 < hi1 < 0.3662
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_proportion_metric_uses_the_binomial_stderr_and_the_wilson_interval():
    outcomes = torch.tensor([True] * 81 + [False] * (263 - 81))
    m = proportion_metric("clean_accuracy", outcomes)
    p = 81 / 263
    assert m.name == "clean_accuracy" and m.n == 263
    assert m.value == pytest.approx(p, rel=1e-15)
    assert m.stderr == pytest.approx(math.sqrt(p * (1 - p) / 263), rel=1e-12)
    assert (round(m.ci_low, 4), round(m.ci_high, 4)) == (0.2553, 0.3662)
    empty = proportion_metric("x", torch.tensor([], dtype=torch.bool))
    assert empty.n == 0 and all(math.isnan(v) for v in (empty.value, empty.stderr, empty.ci_low, empty.ci_high))


# --- median ----------------------------------------------------------------------------------------
def test_median_of_odd_and_even_counts_and_inf():
    assert float(median(torch.tensor([3.0, 1.0, 2.0]))) == 2.0
    assert float(median(torch.tensor([4.0, 1.0, 3.0, 2.0]))) == 2.5  # torch.median would say 2
    assert float(median(torch.tensor([7.0]))) == 7.0
    assert float(median(torch.tensor([1.0, 2.0, math.inf]))) == 2.0  # inf sorts last
    assert float(median(torch.tensor([math.inf, 1.0, 2.0, 3.0]))) == 2.5
    assert float(median(torch.tensor([1.0, math.inf]))) == math.inf  # mean of 1 and inf
    assert float(median(torch.tensor([math.inf, 5.0, math.inf]))) == math.inf
    rows = torch.tensor([[1.0, 9.0, 5.0, 3.0], [2.0, 2.0, 8.0, math.inf]])
    assert median(rows, dim=1).tolist() == [4.0, 5.0]
    assert median(rows, dim=0).tolist() == [1.5, 5.5, 6.5, math.inf]
    assert median(rows.double()).dtype == torch.float64


# --- mean ------------------------------------------------------------------------------------------
def test_mean_metric_normal_interval():
    # 1, 2, 3, 4: mean 2.5, s² = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3, stderr = sqrt(5/3) / 2.
    m = mean_metric("nspgd_closure", torch.tensor([1.0, 2.0, 3.0, 4.0]))
    se = math.sqrt(5 / 3) / 2
    assert m.value == 2.5 and m.n == 4
    assert m.stderr == pytest.approx(se, rel=1e-12)
    assert (m.ci_low, m.ci_high) == (pytest.approx(2.5 - Z95 * se, rel=1e-12), pytest.approx(2.5 + Z95 * se, rel=1e-12))
    one = mean_metric("x", torch.tensor([0.3]))
    assert one.value == pytest.approx(0.3) and one.stderr is None and one.ci_low is None and one.ci_high is None
    none = mean_metric("x", torch.tensor([]))
    assert math.isnan(none.value) and none.n == 0 and none.stderr is None


# --- bootstrap -------------------------------------------------------------------------------------
def _same_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """The resampling indices ``bootstrap`` draws for a small sample (one draw of ``[B, n]``)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (n_resamples, n), generator=gen).numpy()


def _percentile_interval(reps: np.ndarray) -> tuple[float, float]:
    """Docs/measurements.md §6: order statistics floor(0.025 (B - 1)) and ceil(0.975 (B - 1))."""
    r = np.sort(reps)
    b = r.size
    return float(r[math.floor(0.025 * (b - 1))]), float(r[math.ceil(0.975 * (b - 1))])


def test_bootstrap_replicates_are_the_statistic_on_resamples_with_replacement():
    values = torch.tensor([0.5, 2.0, -1.0, 7.0, 3.25])
    reps = bootstrap(values, lambda v: v.mean(dim=1), n_resamples=300, seed=11)
    assert reps.dtype == torch.float64 and reps.shape == (300,)
    idx = _same_indices(5, 300, 11)
    expected = values.double().numpy()[idx].mean(axis=1)
    np.testing.assert_allclose(reps.numpy(), expected, rtol=0, atol=1e-12)
    # Deterministic per seed, different across seeds.
    assert torch.equal(reps, bootstrap(values, lambda v: v.mean(dim=1), n_resamples=300, seed=11))
    assert not torch.equal(reps, bootstrap(values, lambda v: v.mean(dim=1), n_resamples=300, seed=12))
    assert bootstrap(torch.tensor([]), lambda v: v.mean(dim=1)).numel() == 0


def test_bootstrap_resamples_aligned_tensors_together():
    a = torch.arange(10, dtype=torch.float64)
    # Resampled with the same indices, b stays 2a in every replicate; independent draws would not.
    reps = bootstrap((a, 2 * a), lambda u, w: (w - 2 * u).abs().amax(dim=1), n_resamples=200, seed=3)
    assert float(reps.abs().max()) == 0.0
    spread = bootstrap((a, 2 * a), lambda u, w: w.mean(dim=1) - u.mean(dim=1), n_resamples=200, seed=3)
    assert float(spread.std()) > 0  # the resamples do differ


def test_bootstrap_of_the_mean_has_the_exact_bootstrap_variance():
    # For x = (0, 1, 5) the bootstrap distribution of the mean is that of the mean of 3 draws
    # with replacement: all 27 index triples are equally likely, so its variance is exactly
    # sigma_hat² / n with the plug-in sigma_hat² = mean((x - 2)²) = (4 + 1 + 9) / 3 = 14/3,
    # i.e. 14/9. With 2,000 replicates the standard error of their std is about 2 %.
    x = np.array([0.0, 1.0, 5.0])
    exact = [np.mean(x[list(t)]) for t in itertools.product(range(3), repeat=3)]
    assert np.var(exact) == pytest.approx(14 / 9, rel=1e-12)
    reps = bootstrap(torch.tensor(x), lambda v: v.mean(dim=1), n_resamples=DEFAULT_RESAMPLES, seed=0)
    assert float(reps.std()) == pytest.approx(math.sqrt(14 / 9), rel=0.1)
    assert float(reps.mean()) == pytest.approx(2.0, abs=0.15)


def test_median_metric_agrees_with_an_independent_bootstrap_on_the_same_indices():
    values = torch.tensor([0.8, 1.7, 0.2, 2.9, 1.1, 0.6, 3.4, 1.5, 0.9, 2.2, 1.3], dtype=torch.float64)
    b, seed = 2000, 5
    m = median_metric("median_min_l2_distance", values, seed=seed, n_resamples=b)
    reps = np.median(values.double().numpy()[_same_indices(values.numel(), b, seed)], axis=1)
    lo, hi = _percentile_interval(reps)
    assert m.value == pytest.approx(1.3, rel=1e-12) and m.n == 11
    assert m.stderr == pytest.approx(float(np.std(reps, ddof=1)), rel=1e-12)
    assert (m.ci_low, m.ci_high) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))
    assert m.ci_low <= m.value <= m.ci_high


def test_median_metric_interval_on_an_enumerable_bootstrap_distribution():
    # For (0, 1, 5) the resample median is 0 when at least two of the three draws are 0:
    # P = (3 * 2 + 1) / 27 = 7/27 ≈ 26 %, and likewise 5 with 7/27, 1 with 13/27. So the 2.5 % and
    # 97.5 % order statistics of 2,000 replicates are 0 and 5, and the replicates' std is near
    # the exact sqrt(188/27 - (48/27)²) ≈ 1.950.
    x = np.array([0.0, 1.0, 5.0])
    med = [float(np.median(x[list(t)])) for t in itertools.product(range(3), repeat=3)]
    assert (med.count(0.0), med.count(1.0), med.count(5.0)) == (7, 13, 7)
    exact_sd = float(np.std(med))
    assert exact_sd == pytest.approx(math.sqrt(188 / 27 - (48 / 27) ** 2), rel=1e-12)
    m = median_metric("d", torch.tensor(x), seed=0)
    assert m.value == 1.0 and (m.ci_low, m.ci_high) == (0.0, 5.0)
    assert m.stderr == pytest.approx(exact_sd, rel=0.1)


def test_median_metric_of_a_constant_sample_has_a_zero_width_interval():
    m = median_metric("d", torch.full((17,), 0.75), seed=4)
    assert (m.value, m.stderr, m.ci_low, m.ci_high) == (0.75, 0.0, 0.75, 0.75)


def test_median_metric_with_infinite_values():
    # Mostly inf: the median and the upper bound are inf, and no standard error exists.
    m = median_metric("d", torch.tensor([1.0, 2.0, math.inf, math.inf, math.inf]), seed=0)
    assert m.value == math.inf and m.ci_high == math.inf and m.stderr is None
    assert m.ci_low <= 2.0
    empty = median_metric("d", torch.tensor([]))
    assert math.isnan(empty.value) and empty.n == 0 and empty.ci_low is None


# --- ECE -------------------------------------------------------------------------------------------
# 9 examples, 4 bins (0, 1/4], (1/4, 1/2], (1/2, 3/4], (3/4, 1]; a confidence of 0 goes to the first.
# All confidences are exact binary fractions, so conf * 4 is exact and the bin edges are sharp.
#   bin 1: 0.0 (wrong), 0.25 (right)          acc 1/2, mean conf 0.125   gap 0.375   weight 2/9
#   bin 2: 0.375 (wrong), 0.5 (right)         acc 1/2, mean conf 0.4375  gap 0.0625  weight 2/9
#   bin 3: 0.625 (right), 0.75 (right),       acc 2/3, mean conf 2/3     gap 0       weight 3/9
#          0.625 (wrong)
#   bin 4: 1.0 (right), 0.875 (wrong)         acc 1/2, mean conf 0.9375  gap 0.4375  weight 2/9
#   ECE = (2 * 0.375 + 2 * 0.0625 + 3 * 0 + 2 * 0.4375) / 9 = 1.75 / 9 = 7/36 ≈ 0.19444
# Left-closed bins [b/4, (b+1)/4) would move 0.25, 0.5 and 0.75 up a bin and give 5/36; the mean
# per-example gap |correct - conf| would give 3.75/9.
CONF = [0.0, 0.25, 0.375, 0.5, 0.625, 0.75, 0.625, 1.0, 0.875]
RIGHT = [False, True, False, True, True, True, False, True, False]
ECE_BY_HAND = 7 / 36


def test_ece_on_a_hand_computed_example():
    conf = torch.tensor(CONF, dtype=torch.float64)
    right = torch.tensor(RIGHT)
    assert ece_from_confidence(conf, right, n_bins=4) == pytest.approx(ECE_BY_HAND, rel=1e-12)
    # The order of the examples does not matter.
    perm = torch.tensor([8, 3, 0, 6, 1, 7, 2, 5, 4])
    assert ece_from_confidence(conf[perm], right[perm], n_bins=4) == pytest.approx(ECE_BY_HAND, rel=1e-12)


def test_ece_with_one_bin_is_the_gap_between_accuracy_and_mean_confidence():
    conf = torch.tensor(CONF, dtype=torch.float64)
    # Accuracy 5/9 and mean confidence 5/9 (the confidences sum to 5): one bin hides the
    # miscalibration that four bins show.
    assert ece_from_confidence(conf, torch.tensor(RIGHT), n_bins=1) == pytest.approx(0.0, abs=1e-15)
    right = torch.tensor([True] * 9)  # all right: 1 - 5/9
    assert ece_from_confidence(conf, right, n_bins=1) == pytest.approx(4 / 9, rel=1e-12)
    # A perfectly calibrated bin: confidence 0.75 everywhere and 3 of 4 right.
    assert ece_from_confidence(torch.full((4,), 0.75), torch.tensor([True, True, True, False]), 4) == 0.0


def test_batched_ece_rows_are_independent_and_the_edges_are_checked():
    conf = torch.tensor([CONF, [0.9] * 9], dtype=torch.float64)
    right = torch.tensor([RIGHT, [True] * 9])
    out = batched_ece(conf, right, n_bins=4)
    assert out.dtype == torch.float64 and out.shape == (2,)
    assert out[0].item() == pytest.approx(ECE_BY_HAND, rel=1e-12)
    assert out[1].item() == pytest.approx(0.1, rel=1e-12)  # all right at 0.9: gap 0.1
    assert math.isnan(ece_from_confidence(torch.tensor([]), torch.tensor([], dtype=torch.bool)))
    with pytest.raises(ValueError, match="n_bins"):
        batched_ece(conf, right, n_bins=0)


def test_ece_metric_agrees_with_an_independent_bootstrap_on_the_same_indices():
    conf = np.array(CONF)
    right = np.array(RIGHT, dtype=float)
    b, seed, n_bins = 2000, 9, 4

    def ece_numpy(c: np.ndarray, k: np.ndarray) -> float:
        # Right-closed bins, independently of the library: bin b holds c in (b/B, (b+1)/B].
        total = 0.0
        for lo in range(n_bins):
            inside = (c > lo / n_bins) & (c <= (lo + 1) / n_bins) | ((lo == 0) & (c == 0))
            if inside.any():
                total += inside.sum() / c.size * abs(k[inside].mean() - c[inside].mean())
        return total

    assert ece_numpy(conf, right) == pytest.approx(ECE_BY_HAND, rel=1e-12)
    idx = _same_indices(conf.size, b, seed)
    reps = np.array([ece_numpy(conf[i], right[i]) for i in idx])
    lo, hi = _percentile_interval(reps)
    m = ece_metric("ece", torch.tensor(conf), torch.tensor(RIGHT), n_bins=n_bins, seed=seed, n_resamples=b)
    assert m.name == "ece" and m.n == 9
    assert m.value == pytest.approx(ECE_BY_HAND, rel=1e-12)
    assert m.stderr == pytest.approx(float(np.std(reps, ddof=1)), rel=1e-9)
    assert (m.ci_low, m.ci_high) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    empty = ece_metric("ece", torch.tensor([]), torch.tensor([], dtype=torch.bool))
    assert math.isnan(empty.value) and empty.stderr is None
