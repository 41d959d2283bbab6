"""Spearman's rank correlation across a board's models (invarbench.metrics.correlation), checked
against SciPy's independent implementation and analytic cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from invarbench.errors import ValidationError
from invarbench.metrics.correlation import MIN_MODELS, average_ranks, spearman, spearman_rows

scipy_stats = pytest.importorskip("scipy.stats")


def test_average_ranks_share_tied_ranks():
    assert average_ranks(torch.tensor([3.0, 1.0, 3.0, 3.0])).tolist() == [3.0, 1.0, 3.0, 3.0]
    assert average_ranks(torch.tensor([0.5, 0.1, 0.9])).tolist() == [2.0, 1.0, 3.0]


@pytest.mark.parametrize("seed", range(8))
def test_rho_equals_scipy_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 30))
    x = rng.normal(size=n)
    y = 0.5 * x + rng.normal(size=n)
    if seed % 2:  # ties in both columns
        x, y = np.round(x), np.round(y * 2) / 2
    expected = scipy_stats.spearmanr(x, y).statistic
    got = spearman(x.tolist(), y.tolist(), n_resamples=10).rho
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def test_monotone_columns_correlate_exactly():
    x = [0.1, 0.2, 0.5, 0.7, 0.9]
    assert spearman(x, [v**3 for v in x]).rho == 1.0
    assert spearman(x, [-v for v in x]).rho == -1.0


def test_bootstrap_interval_is_scipy_on_the_same_resamples():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=12), rng.normal(size=12)
    res = spearman(x.tolist(), y.tolist(), n_resamples=400, seed=7)
    # The same resampling indices (stats.bootstrap: torch.randint with a CPU generator seeded 7), each
    # replicate's coefficient by SciPy, constant resamples dropped, percentile interval rounded outward.
    idx = torch.randint(0, 12, (400, 12), generator=torch.Generator().manual_seed(7)).numpy()
    reps = []
    for row in idx:
        xs, ys = x[row], y[row]
        if np.ptp(xs) > 0 and np.ptp(ys) > 0:
            reps.append(scipy_stats.spearmanr(xs, ys).statistic)
    reps = np.sort(np.array(reps))
    b = len(reps)
    assert res.resamples_used == b
    assert res.ci_low == pytest.approx(reps[math.floor(0.025 * (b - 1))], abs=1e-12)
    assert res.ci_high == pytest.approx(reps[math.ceil(0.975 * (b - 1))], abs=1e-12)
    assert res.ci_low <= res.rho <= res.ci_high


def test_too_few_models_or_constant_column_give_nan():
    assert math.isnan(spearman([0.1, 0.2], [0.3, 0.1]).rho)
    assert spearman([0.1, 0.2], [0.3, 0.1]).n == 2 < MIN_MODELS
    assert math.isnan(spearman([1.0, 1.0, 1.0, 1.0], [0.1, 0.2, 0.3, 0.4]).rho)


def test_non_finite_pairs_are_dropped_and_columns_must_align():
    res = spearman([0.1, math.nan, 0.3, 0.4, 0.5], [1.0, 2.0, 3.0, math.inf, 5.0], n_resamples=10)
    assert res.n == 3 and res.rho == 1.0
    with pytest.raises(ValidationError):
        spearman([0.1, 0.2, 0.3], [0.1, 0.2])


def test_deterministic_for_a_seed():
    x, y = [0.3, 0.1, 0.4, 0.15, 0.9, 0.26], [0.2, 0.7, 0.1, 0.8, 0.2, 0.4]
    assert spearman(x, y, seed=1) == spearman(x, y, seed=1)
    rows = spearman_rows(torch.tensor([x, x]), torch.tensor([y, x]))
    assert rows[1].item() == 1.0


def test_three_or_four_models_get_the_coefficient_but_no_interval():
    """Bootstrapping 3 models: every resample of 3 distinct models is the same set, so the percentile
    interval would collapse onto the coefficient ([+1.00, +1.00]); below 5 models there is none."""
    three = spearman([0.1, 0.2, 0.3], [1.0, 2.0, 3.0])
    assert three.rho == 1.0 and math.isnan(three.ci_low) and math.isnan(three.ci_high) and three.n == 3
    four = spearman([0.1, 0.2, 0.3, 0.4], [1.0, 3.0, 2.0, 4.0])
    assert four.rho == pytest.approx(0.8) and math.isnan(four.ci_low)
    five = spearman([0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 3.0, 2.0, 4.0, 5.0])
    assert five.rho == pytest.approx(0.9) and five.ci_low <= five.rho <= five.ci_high
