"""PGD beyond tests/test_pgd.py (binary linear ground truth): restarts, L2 early exit on a
trained CNN, the validity of x_adv, determinism and robustness to NaN gradients."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import SqrtInput, bar_images, mid_images, random_linear, trained_tiny_cnn

from invarbench.attacks.pgd import PGDConfig, pgd_attack


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("norm, eps", [("linf", 0.12), ("l2", 0.8)])
def test_x_adv_is_misclassified_inside_the_ball_and_the_box(norm, eps):
    model = trained_tiny_cnn()
    x, y = bar_images(64, seed=11)
    res = pgd_attack(model, x, y, PGDConfig(norm, eps, 20, restarts=2), generator=_gen(0))
    broken = ~res.robust
    assert 0 < int(broken.sum()) < 64
    with torch.no_grad():
        assert bool((model(res.x_adv[broken]).argmax(1) != y[broken]).all())
    delta = (res.x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps * (1 + 1e-5)
    assert float(res.x_adv.min()) >= 0.0 and float(res.x_adv.max()) <= 1.0
    # broken_at indexes iterates over restarts: restart r, iterate i -> r * (steps + 1) + i.
    assert bool((res.broken_at[broken] >= 0).all()) and bool((res.broken_at[broken] < 2 * 21).all())
    assert bool((res.broken_at[res.robust] == 2 * 21).all())


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 0.8)])
def test_early_exit_with_restarts_matches_running_every_step(norm, eps):
    model = trained_tiny_cnn()
    x, y = bar_images(96, seed=12)
    fast = pgd_attack(model, x, y, PGDConfig(norm, eps, 15, restarts=3, early_exit=True), generator=_gen(5))
    slow = pgd_attack(model, x, y, PGDConfig(norm, eps, 15, restarts=3, early_exit=False), generator=_gen(5))
    assert torch.equal(fast.robust, slow.robust)
    assert torch.equal(fast.broken_at, slow.broken_at)
    assert torch.allclose(fast.x_adv, slow.x_adv, atol=1e-6)
    assert fast.forward_backward_passes < slow.forward_backward_passes


def test_robust_accuracy_on_a_trained_cnn_is_monotone_in_eps_and_below_clean_accuracy():
    model = trained_tiny_cnn()
    x, y = bar_images(128, seed=13)
    clean = float((model(x).argmax(1) == y).float().mean())
    for norm, budgets in (("linf", (0.03, 0.08, 0.12, 0.2)), ("l2", (0.3, 0.8, 1.5, 3.0))):
        accs = [
            float(pgd_attack(model, x, y, PGDConfig(norm, e, 20), generator=_gen(1)).robust.float().mean())
            for e in budgets
        ]
        assert accs[0] <= clean
        assert all(a >= b for a, b in zip(accs, accs[1:])), (norm, accs)
        assert accs[-1] < clean  # the budgets are large enough to matter


def test_same_generator_seed_gives_identical_results_and_progress_reports_the_working_batch():
    model = trained_tiny_cnn()
    x, y = bar_images(64, seed=14)
    seen: list[tuple[int, int]] = []
    cfg = PGDConfig("linf", 0.12, 10)
    a = pgd_attack(model, x, y, cfg, generator=_gen(7), on_step=lambda s, n: seen.append((s, n)))
    b = pgd_attack(model, x, y, cfg, generator=_gen(7))
    assert torch.equal(a.robust, b.robust) and torch.equal(a.broken_at, b.broken_at)
    assert torch.equal(a.x_adv, b.x_adv)
    steps = [s for s, _ in seen]
    active = [n for _, n in seen]
    assert steps == list(range(1, len(steps) + 1))
    assert all(p >= q for p, q in zip(active, active[1:]))  # examples only leave the batch
    # After step s the batch holds exactly the examples not broken at iterates 0..s-1.
    for s, n in seen:
        assert n == int((a.broken_at >= s).sum())


def test_nan_input_gradients_do_not_poison_the_iterates():
    inner = random_linear(3, scale=0.5)
    model = SqrtInput(inner)
    x = mid_images(16)
    x[:, :, 0, 0] = 0.0  # a zero pixel: NaN gradient there
    y = model(x).argmax(dim=1)
    res = pgd_attack(model, x, y, PGDConfig("linf", 0.05, 10), generator=_gen(0))
    assert bool(torch.isfinite(res.x_adv).all())
