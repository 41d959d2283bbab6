"""Equi-confidence path widths: models whose tubes are known exactly, the width definition's
edge cases, smoothness, and independence from the batch budget."""

from __future__ import annotations

import math

import pytest
import torch
from attack_helpers import mid_images, random_linear
from torch import nn

from invarbench.attacks.pathwidth import PathWidthConfig, path_widths, width_from_tube

SHAPE = (1, 8, 8)
D = 64


class Radial(nn.Module):
    """Class-0 logit ``k - s ||x - a||^2``, class-1 logit 0: p_0 depends on the distance to ``a`` only."""

    def __init__(self, a: torch.Tensor, k: float = 3.0, s: float = 25.0) -> None:
        super().__init__()
        self.a, self.k, self.s = a, k, s

    def forward(self, x):
        r2 = ((x - self.a) ** 2).flatten(1).sum(1)
        return torch.stack([self.k - self.s * r2, torch.zeros_like(r2)], dim=1)


class AlongOnly(nn.Module):
    """Logits ``[w.x, 0]``: the confidence changes only along ``w``."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def forward(self, x):
        z = x.flatten(1) @ self.w
        return torch.stack([z, torch.zeros_like(z)], dim=1)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_width_definition_edge_cases():
    p0 = torch.tensor([0.8, 0.8, 0.8, 0.8, 0.8])
    radii = torch.tensor([1.0, 2.0, 3.0])
    q_lo = torch.tensor(
        [
            [0.7, 0.5, 0.2],  # crosses 0.4 between r=2 and r=3, a third of the way
            [0.2, 0.1, 0.0],  # already below at r=1: interpolate from (0, p0)
            [0.7, 0.6, 0.5],  # never below: censored at the largest radius
            [0.3, 0.7, 0.7],  # the first crossing counts, not a later recovery
            [0.4, 0.4, 0.39],  # exactly at the threshold passes: it leaves at r=2, not r=0
        ]
    )
    width, censored = width_from_tube(p0, q_lo, radii, 0.5)
    expected = [2 + 1 / 3, 2 / 3, 3.0, 0.8, 2.0]
    assert torch.allclose(width, torch.tensor(expected), atol=1e-6), width
    assert censored.tolist() == [False, False, True, False, False]


def test_tube_of_a_radial_model_is_the_analytic_confidence_at_each_radius():
    a = torch.full((1, *SHAPE), 0.5)
    model = Radial(a)
    radii = (0.1, 0.2, 0.3, 0.4, 0.5)  # <= 0.5 from the centre: no clipping
    points = a.expand(3, *SHAPE).clone()
    dirs = torch.randn((3, *SHAPE), generator=_gen(1))
    res = path_widths(
        model,
        points,
        dirs,
        torch.zeros(3, dtype=torch.long),
        PathWidthConfig(directions=32, radii=radii),
        generator=_gen(2),
    )
    r = torch.tensor(radii)
    exact = torch.sigmoid(3.0 - 25.0 * r**2)
    assert torch.allclose(res.q_lo, exact.expand(3, -1), atol=1e-5)
    assert torch.allclose(res.q_hi, exact.expand(3, -1), atol=1e-5)
    p0 = torch.sigmoid(torch.tensor(3.0))
    assert torch.allclose(res.p0, p0.expand(3), atol=1e-6)
    # Crossing of p0/2 by the piecewise-linear tube: between r=0.3 and r=0.4.
    q3, q4 = float(exact[2]), float(exact[3])
    tau = float(p0) / 2
    assert torch.allclose(res.width, torch.tensor(0.3 + 0.1 * (q3 - tau) / (q3 - q4)).expand(3), atol=1e-5)
    assert not bool(res.censored.any())


def test_directions_are_normal_to_the_step_so_a_model_varying_only_along_it_has_a_flat_tube():
    w = torch.randn(D, generator=_gen(3))
    model = AlongOnly(w)
    points = torch.full((4, *SHAPE), 0.5)
    steps = w.view(1, *SHAPE).expand(4, *SHAPE) * torch.tensor([1.0, -2.0, 0.5, 3.0]).view(4, 1, 1, 1)
    res = path_widths(
        model,
        points,
        steps,
        torch.zeros(4, dtype=torch.long),
        PathWidthConfig(directions=64, radii=(0.1, 0.3, 0.5)),
        generator=_gen(4),
    )
    assert torch.allclose(res.q_lo, res.p0[:, None].expand(-1, 3), atol=1e-5)
    assert torch.allclose(res.q_hi, res.p0[:, None].expand(-1, 3), atol=1e-5)
    assert bool(res.censored.all()) and res.width.tolist() == [0.5] * 4
    # The same model with directions *not* normal to w (step along another axis) varies.
    other = torch.randn((4, *SHAPE), generator=_gen(5))
    res2 = path_widths(
        model,
        points,
        other,
        torch.zeros(4, dtype=torch.long),
        PathWidthConfig(directions=64, radii=(0.1, 0.3, 0.5)),
        generator=_gen(4),
    )
    assert float((res2.q_hi - res2.q_lo).min()) > 1e-3


def test_a_smoother_model_has_wider_paths():
    sharp = random_linear(10, shape=SHAPE, scale=1.0, seed=6)
    smooth = random_linear(10, shape=SHAPE, scale=0.25, seed=6)
    points = mid_images(8, seed=7)
    classes = sharp(points).argmax(1)  # scaling the weights keeps the argmax
    assert torch.equal(classes, smooth(points).argmax(1))
    dirs = torch.randn((8, *SHAPE), generator=_gen(8))
    cfg = PathWidthConfig(directions=128, radii=(0.25, 0.5, 1.0, 1.5, 2.0, 3.0))
    w_sharp = path_widths(sharp, points, dirs, classes, cfg, generator=_gen(9)).width
    w_smooth = path_widths(smooth, points, dirs, classes, cfg, generator=_gen(9)).width
    assert not bool((w_sharp == 3.0).all())
    assert bool((w_smooth >= w_sharp).all())
    assert float(w_smooth.mean()) > 1.5 * float(w_sharp.mean())


@pytest.mark.parametrize("budget", [10_000, 6 * 32, 100, 7])
def test_results_do_not_depend_on_the_batch_budget(budget):
    model = random_linear(5, shape=SHAPE, scale=0.5, seed=10)
    points = mid_images(5, seed=11)
    dirs = torch.randn((5, *SHAPE), generator=_gen(12))
    classes = model(points).argmax(1)
    base = PathWidthConfig(directions=32, radii=(0.2, 0.5, 1.0, 1.5, 2.0, 3.0))
    ref = path_widths(model, points, dirs, classes, base, generator=_gen(13))
    cfg = PathWidthConfig(directions=32, radii=base.radii, max_batch_images=budget)
    calls: list[int] = []
    res = path_widths(model, points, dirs, classes, cfg, generator=_gen(13), on_step=lambda d, t: calls.append(d))
    for name in ("p0", "q_lo", "q_hi", "width"):
        assert torch.allclose(getattr(res, name), getattr(ref, name), atol=1e-6), name
    assert calls[-1] == 5
    # And a second run with the same seed is identical.
    again = path_widths(model, points, dirs, classes, cfg, generator=_gen(13))
    assert torch.equal(again.q_lo, res.q_lo)


def test_a_different_seed_draws_different_directions():
    model = random_linear(5, shape=SHAPE, scale=0.5, seed=10)
    points = mid_images(3, seed=11)
    classes = model(points).argmax(1)
    cfg = PathWidthConfig(directions=16, radii=(0.5, 1.0))
    a = path_widths(model, points, points, classes, cfg, generator=_gen(1))
    b = path_widths(model, points, points, classes, cfg, generator=_gen(2))
    assert not torch.equal(a.q_lo, b.q_lo)
    assert torch.equal(a.p0, b.p0)


def test_config_validation():
    with pytest.raises(ValueError, match="radii"):
        PathWidthConfig(radii=(1.0, 0.5))
    with pytest.raises(ValueError, match="q_lo"):
        PathWidthConfig(q_lo=0.9, q_hi=0.1)
    assert PathWidthConfig(radii=[1, 2]).radii == (1.0, 2.0)
    assert math.isclose(PathWidthConfig().q_lo, 0.05)
