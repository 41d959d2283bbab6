"""Exact cycle detection in L-inf PGD (``PGDConfig.cycle_detection``): bit-identical ``robust`` and
``broken_at`` to running every step, on random small models for many seeds; it really stops
cycling examples; and only exact repeats stop an example."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import invarbench.attacks.pgd as pgd_module
from invarbench.attacks.pgd import PGDConfig, pgd_attack


def _random_model(seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A random small ReLU network (MLP or CNN by seed) on 1x10x10 images, and images it classifies
    as their labels for the most part."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if seed % 2:
        model = nn.Sequential(nn.Flatten(), nn.Linear(100, 24), nn.ReLU(), nn.Linear(24, 5))
    else:
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 5))
    model.eval().requires_grad_(False)
    x = torch.rand((48, 1, 10, 10), generator=gen)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:4] = (y[:4] + 1) % 5  # a few misclassified clean
    return model, x, y


def _cfg(seed: int, **kw) -> PGDConfig:
    eps = (0.02, 0.05, 0.1, 0.2)[seed % 4]
    return PGDConfig("linf", eps, steps=30, step_size=eps / (2 + seed % 3), restarts=1 + seed % 2, **kw)


@pytest.mark.parametrize("seed", range(24))
def test_cycle_detection_gives_the_same_robust_and_broken_at_as_every_step(seed):
    model, x, y = _random_model(seed)
    every = pgd_attack(model, x, y, _cfg(seed, early_exit=False), generator=torch.Generator().manual_seed(seed))
    for early_exit in (True, False):
        cyc = pgd_attack(
            model,
            x,
            y,
            _cfg(seed, cycle_detection=True, early_exit=early_exit),
            generator=torch.Generator().manual_seed(seed),
        )
        assert torch.equal(cyc.robust, every.robust), seed
        assert torch.equal(cyc.broken_at, every.broken_at), seed
        # The repeated iterate it keeps for a robust example is one of the iterates: not misclassified.
        with torch.no_grad():
            assert bool((model(cyc.x_adv[cyc.robust]).argmax(1) == y[cyc.robust]).all())


def test_cycle_detection_stops_cycling_examples_and_saves_gradient_passes():
    saved = []
    for seed in range(12):
        model, x, y = _random_model(seed)
        plain = pgd_attack(model, x, y, _cfg(seed), generator=torch.Generator().manual_seed(seed))
        cyc = pgd_attack(model, x, y, _cfg(seed, cycle_detection=True), generator=torch.Generator().manual_seed(seed))
        assert cyc.forward_backward_passes <= plain.forward_backward_passes
        saved.append(plain.forward_backward_passes - cyc.forward_backward_passes)
    assert sum(s > 0 for s in saved) >= 6, saved  # cycles do occur, and they are stopped


def test_a_linear_model_reaches_a_fixed_point_that_is_stopped_at_once():
    # A linear model's gradient sign never changes: the iterate walks to a corner of the ball and
    # stays there (a cycle of period 1), two steps after it gets there at the latest.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval().requires_grad_(False)
    x = 0.5 + 0.01 * torch.randn(20, 1, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)
    cfg = PGDConfig("linf", 1e-4, steps=40, step_size=1e-4)  # far too small to break anything
    plain = pgd_attack(model, x, y, cfg, generator=torch.Generator().manual_seed(0))
    cyc = pgd_attack(
        model, x, y, PGDConfig("linf", 1e-4, 40, 1e-4, cycle_detection=True), generator=torch.Generator().manual_seed(0)
    )
    assert bool(plain.robust.all()) and torch.equal(cyc.robust, plain.robust)
    assert plain.forward_backward_passes == 20 * 40
    assert cyc.forward_backward_passes <= 20 * 3


@pytest.mark.parametrize("seed", range(6))
def test_only_exact_repeats_stop_an_example_even_when_every_fingerprint_collides(seed, monkeypatch):
    # With a constant fingerprint every earlier iterate is a candidate: the exact comparison alone
    # decides, so iterates that merely come close (or collide) never end an example's restart.
    model, x, y = _random_model(seed)
    every = pgd_attack(model, x, y, _cfg(seed, early_exit=False), generator=torch.Generator().manual_seed(seed))
    honest = pgd_attack(model, x, y, _cfg(seed, cycle_detection=True), generator=torch.Generator().manual_seed(seed))
    monkeypatch.setattr(pgd_module, "_fingerprint", lambda t: torch.zeros(t.shape[0], dtype=torch.float64))
    collide = pgd_attack(model, x, y, _cfg(seed, cycle_detection=True), generator=torch.Generator().manual_seed(seed))
    assert torch.equal(collide.robust, every.robust) and torch.equal(collide.broken_at, every.broken_at)
    assert collide.forward_backward_passes == honest.forward_backward_passes


def test_near_repeats_are_not_repeats():
    # Two iterates one float32 ulp apart in one pixel: different fingerprints or not, not a repeat.
    a = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    b = a.clone()
    b[1, 0, 2, 3] = torch.nextafter(b[1, 0, 2, 3], torch.tensor(2.0))
    assert not torch.equal(a[1], b[1])
    assert bool((pgd_module._fingerprint(a)[[0, 2]] == pgd_module._fingerprint(b)[[0, 2]]).all())


def test_cycle_detection_is_for_linf_only():
    with pytest.raises(ValueError, match="L-inf"):
        PGDConfig("l2", 0.5, 10, cycle_detection=True)
