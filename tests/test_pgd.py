"""PGD against analytic ground truth: a linear classifier's minimal L∞ and L2 distances are known."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from invarbench.attacks.pgd import PGDConfig, pgd_attack


def _linear_model(d: int = 64, seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(2, d, generator=gen))
        model[1].bias.zero_()
    model.requires_grad_(False)
    # Images near the middle of the box, so that a small ball never touches it.
    x = 0.5 + 0.01 * torch.randn(8, 1, 8, 8, generator=gen)
    return model, x, model(x).argmax(dim=1)


def _minimal_distances(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = model[1].weight
    w_diff = w[y] - w[1 - y]  # (n, d): direction that raises the true class's margin
    margin = (model(x).gather(1, y[:, None]) - model(x).gather(1, (1 - y)[:, None])).squeeze(1)
    return margin / w_diff.abs().sum(dim=1), margin / w_diff.norm(dim=1)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_breaks_just_above_and_not_just_below_the_minimal_distance(norm):
    model, x, y = _linear_model()
    d_linf, d_l2 = _minimal_distances(model, x, y)
    dist = d_linf if norm == "linf" else d_l2
    assert float(dist.max()) < 0.3  # the ball stays inside the box around 0.5
    for i in range(x.shape[0]):
        xi, yi = x[i : i + 1], y[i : i + 1]

        def attack(eps: float, xi=xi, yi=yi):
            # A random start leaves an L2 iterate at an angle to the optimal direction that only
            # decays with the total distance travelled, so take enough of it (20 eps).
            cfg = PGDConfig(norm=norm, eps=eps, steps=200, step_size=eps / 10)
            return pgd_attack(model, xi, yi, cfg, generator=torch.Generator().manual_seed(1))

        above, below = attack(float(dist[i]) * 1.01), attack(float(dist[i]) * 0.99)
        assert not bool(above.robust[0]), f"example {i}: PGD failed at 1.01x the minimal {norm} distance"
        assert bool(below.robust[0]), f"example {i}: PGD 'succeeded' below the minimal {norm} distance"
        delta = above.x_adv - xi
        size = delta.abs().max() if norm == "linf" else delta.norm()
        assert float(size) <= float(dist[i]) * 1.01 + 1e-6  # the adversarial example respects the budget


def test_misclassified_clean_examples_count_as_broken_without_attack_work():
    model, x, y = _linear_model()
    wrong = 1 - y
    result = pgd_attack(model, x, wrong, PGDConfig(norm="linf", eps=0.01, steps=5))
    assert not bool(result.robust.any())
    assert result.broken_at.tolist() == [-1] * x.shape[0]
    assert result.forward_backward_passes == 0


def test_early_exit_changes_no_result_and_saves_work():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3))
    model.requires_grad_(False)
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = model(x).argmax(dim=1)
    for eps in (0.02, 0.05, 0.1):
        cfg = dict(norm="linf", eps=eps, steps=20)
        fast = pgd_attack(model, x, y, PGDConfig(**cfg, early_exit=True), generator=torch.Generator().manual_seed(3))
        slow = pgd_attack(model, x, y, PGDConfig(**cfg, early_exit=False), generator=torch.Generator().manual_seed(3))
        assert torch.equal(fast.robust, slow.robust)
        assert torch.equal(fast.broken_at, slow.broken_at)
        assert fast.forward_backward_passes <= slow.forward_backward_passes


def test_robust_accuracy_is_monotone_in_eps_and_below_clean_accuracy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))
    model.requires_grad_(False)
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(5))
    clean = float((model(x).argmax(1) == y).float().mean())
    accs = [
        float(
            pgd_attack(
                model, x, y, PGDConfig(norm="linf", eps=eps, steps=20), generator=torch.Generator().manual_seed(6)
            )
            .robust.float()
            .mean()
        )
        for eps in (0.0001, 0.01, 0.03, 0.1)
    ]
    assert accs[0] <= clean
    assert all(a >= b for a, b in zip(accs, accs[1:])), accs
