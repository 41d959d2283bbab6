"""The minimal adversarial L2 distance (FMN + boundary bisection) against analytic ground truth."""

from __future__ import annotations

import math

import pytest
import torch
from attack_helpers import bar_images, linear_min_l2, mid_images, random_linear, trained_tiny_cnn
from torch import nn

from invarbench.attacks.minnorm import MinNormConfig, min_l2_distance
from invarbench.attacks.pgd import PGDConfig, pgd_attack


@pytest.mark.parametrize("classes", [2, 10])
def test_distance_matches_the_analytic_minimum_of_a_linear_model_within_one_percent(classes):
    model = random_linear(classes, scale=0.3, seed=classes)
    x = mid_images(32, seed=classes + 1)
    y = model(x).argmax(dim=1)
    exact, foot = linear_min_l2(model, x, y)
    assert float(foot.min()) > 0 and float(foot.max()) < 1  # the nearest boundary point is inside the box
    res = min_l2_distance(model, x, y, MinNormConfig(steps=50))
    rel = (res.distance - exact).abs() / exact
    assert float(rel.max()) < 0.01, rel
    assert bool((res.distance >= exact * (1 - 1e-4)).all())  # nothing beats the true minimum
    assert bool((model(res.x_adv).argmax(1) != y).all())
    assert torch.allclose((res.x_adv - x).flatten(1).norm(dim=1), res.distance, rtol=1e-4)


def test_misclassified_clean_examples_are_at_distance_zero_and_hopeless_ones_at_infinity():
    model = random_linear(3, scale=0.3)
    x = mid_images(6)
    y = model(x).argmax(dim=1)
    wrong = (y + 1) % 3
    res = min_l2_distance(model, x, wrong, MinNormConfig(steps=5))
    assert res.distance.tolist() == [0.0] * 6
    assert torch.equal(res.x_adv, x)

    class Constant(nn.Module):  # predicts class 0 whatever the input: no adversarial example exists
        def forward(self, inp):
            return torch.tensor([1.0, 0.0], dtype=inp.dtype).expand(inp.shape[0], 2) + 0 * inp.flatten(1)[:, :1]

    res = min_l2_distance(Constant(), x, torch.zeros(6, dtype=torch.long), MinNormConfig(steps=10))
    assert all(math.isinf(d) for d in res.distance.tolist())
    assert torch.equal(res.x_adv, x)


def test_on_a_cnn_the_distance_is_that_of_a_real_adversarial_example_and_beats_pgd():
    model = trained_tiny_cnn()
    x, y = bar_images(48, seed=21)
    res = min_l2_distance(model, x, y, MinNormConfig(steps=60))
    found = torch.isfinite(res.distance)
    assert bool(found.all())
    with torch.no_grad():
        assert bool((model(res.x_adv).argmax(1) != y).all())
    assert torch.allclose((res.x_adv - x).flatten(1).norm(dim=1), res.distance, rtol=1e-4)
    assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
    # PGD-L2 at the median distance cannot break many more than half of the examples if the
    # distances are (close to) minimal; FMN is the stronger attack.
    eps = float(res.distance.median())
    pgd = pgd_attack(model, x, y, PGDConfig("l2", eps, 50), generator=torch.Generator().manual_seed(0))
    broken_by_pgd = float((~pgd.robust).float().mean())
    within = float((res.distance <= eps).float().mean())
    assert broken_by_pgd <= within + 0.1


def test_it_is_deterministic_and_reports_progress():
    model = trained_tiny_cnn()
    x, y = bar_images(16, seed=22)
    steps: list[int] = []
    a = min_l2_distance(model, x, y, MinNormConfig(steps=12), on_step=lambda s, n: steps.append(s))
    b = min_l2_distance(model, x, y, MinNormConfig(steps=12))
    assert torch.equal(a.distance, b.distance)
    assert steps == list(range(1, 13))


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="steps"):
        MinNormConfig(steps=0)
    with pytest.raises(ValueError, match="gamma"):
        MinNormConfig(gamma=0.0)
    with pytest.raises(ValueError, match="method"):
        MinNormConfig(method="ddn")  # type: ignore[arg-type]
