"""NSPGD against the analytic walk of a two-class linear model, a per-pair reference
implementation (with its separate check forward pass), and its invariants on a small CNN."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import bar_images, mid_images, random_linear, trained_tiny_cnn
from torch import nn

from invarbench.attacks.nspgd import NSPGDConfig, nspgd


def _p(model: nn.Module, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return torch.softmax(model(x), dim=1).gather(1, c[:, None]).squeeze(1)


def _linear_pairs(sign: float, n: int = 8):
    """A two-class linear model (float64) and pairs whose target lies on the side of lower
    (``sign < 0``) or higher (``sign > 0``) source confidence."""
    model = random_linear(2, scale=0.2, seed=3).double()
    x0 = mid_images(n, spread=0.04, seed=4).double()
    c = model(x0).argmax(dim=1)
    w = model.weight[c] - model.weight[1 - c]  # [n, D]: grad p_c is a positive multiple of w
    t = mid_images(n, spread=0.04, seed=5).double()
    # Shift each target along w so that w.(t - x0) has the wanted sign and a moderate size.
    s = ((t - x0).flatten(1) * w).sum(1) / (w * w).sum(1)
    t = t - ((s - sign * 0.02) * w.T).T.view_as(t)
    return model, x0, c, t, w


def test_walk_toward_lower_confidence_converges_to_the_analytic_fixed_point():
    model, x0, c, t, w = _linear_pairs(-1.0)
    eta, k = 0.05, 100
    res = nspgd(model, x0, c, t, NSPGDConfig(eta=eta, delta=0.05, max_iter=k))
    flat0, flatt = x0.flatten(1), t.flatten(1)
    wn2 = (w * w).sum(1, keepdim=True)
    fixed = flatt + w * ((w * (flat0 - flatt)).sum(1, keepdim=True) / wn2)  # t + w (w.(x0 - t)) / |w|^2
    assert float(fixed.min()) > 0 and float(fixed.max()) < 1  # no clipping on the way
    # x_k - x* = (1 - eta)^k (x0 - x*), and x_k - x* is orthogonal to x* - t.
    perp = (fixed - flatt).norm(dim=1)
    expected = torch.sqrt(perp**2 + ((1 - eta) ** k * (flat0 - fixed).norm(dim=1)) ** 2)
    assert res.accepted_steps.tolist() == [k] * x0.shape[0]
    assert torch.allclose(res.remaining_l2, expected, rtol=1e-9)
    assert torch.allclose(res.x_final.flatten(1), fixed + (1 - eta) ** k * (flat0 - fixed), atol=1e-12)
    # The confidence did not move, so every step was accepted and the class kept.
    assert torch.allclose(res.p_source_final, res.p_source_start, atol=1e-12)
    assert bool(res.still_source.all())
    # With many more steps the remaining distance is the fixed point's |w.(x0 - t)| / |w|.
    far = nspgd(model, x0, c, t, NSPGDConfig(eta=eta, delta=0.05, max_iter=400))
    analytic = (w * (flat0 - flatt)).sum(1).abs() / wn2.squeeze(1).sqrt()
    assert torch.allclose(far.remaining_l2, analytic, rtol=1e-3)
    assert torch.allclose(far.closure, 1 - analytic / (flat0 - flatt).norm(dim=1), rtol=1e-3)


def test_walk_toward_higher_confidence_goes_straight_to_the_target():
    model, x0, c, t, _ = _linear_pairs(+1.0)
    res = nspgd(model, x0, c, t, NSPGDConfig(eta=0.05, delta=0.05, max_iter=60))
    start = (x0 - t).flatten(1).norm(dim=1)
    assert torch.allclose(res.remaining_l2, 0.95**60 * start, rtol=1e-9)
    assert torch.allclose(res.closure, torch.full_like(start, 1 - 0.95**60), rtol=1e-9)


def _reference_nspgd(model, x0, c, t, cfg):
    """docs/measurements.md §2 literally, one pair at a time, with a separate forward pass for the check."""
    finals, steps, points, valid = [], [], [], []
    for k in range(x0.shape[0]):
        x, ck, tk = x0[k : k + 1], c[k : k + 1], t[k : k + 1]
        p0 = _p(model, x, ck)
        n_ok, pts, ok_at = 0, [], []
        for it in range(cfg.max_iter):
            xg = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(_p(model, xg, ck).sum(), xg)
            v = tk - x
            gv = (g * v).sum()
            if gv < 0:
                v = v - gv / (g * g).sum() * g
            x_new = (x + cfg.eta * v).clamp(0, 1)
            if it in cfg.record_at:
                pts.append(x.clone())
                ok_at.append(True)
            with torch.no_grad():
                accept = bool(p0 - _p(model, x_new, ck) < cfg.delta)
            if not accept:
                break
            x, n_ok = x_new, n_ok + 1
        missing = len(cfg.record_at) - len(pts)
        pts += [torch.zeros_like(x)] * missing
        ok_at += [False] * missing
        finals.append(x)
        steps.append(n_ok)
        points.append(torch.cat(pts))
        valid.append(ok_at)
    return torch.cat(finals), torch.tensor(steps), torch.stack(points), torch.tensor(valid)


def test_batched_walk_with_reused_forward_passes_equals_the_literal_per_pair_walk():
    model = trained_tiny_cnn().double()
    x, y = bar_images(40, seed=31)
    x = x.double()
    keep = model(x).argmax(1) == y
    x, y = x[keep][:12], y[keep][:12]
    t = torch.roll(x, 1, 0)
    ok = y != torch.roll(y, 1, 0)
    x, y, t = x[ok], y[ok], t[ok]
    cfg = NSPGDConfig(eta=0.05, delta=0.002, max_iter=40, record_at=(0, 5, 10, 20, 39))
    res = nspgd(model, x, y, t, cfg)
    finals, steps, points, valid = _reference_nspgd(model, x, y, t, cfg)
    assert res.accepted_steps.tolist() == steps.tolist()
    assert len(set(steps.tolist())) > 1  # pairs stop at different iterations: the batch shrinks
    assert torch.allclose(res.x_final, finals, atol=1e-10)
    assert torch.equal(res.path_valid, valid)
    assert torch.allclose(res.path_points[valid], points[valid], atol=1e-10)


def test_invariants_on_a_cnn():
    model = trained_tiny_cnn()
    x, y = bar_images(64, seed=32)
    keep = model(x).argmax(1) == y
    x, y = x[keep], y[keep]
    t = torch.roll(x, 7, 0)
    rec = (0, 6, 12, 18, 24)
    cfg = NSPGDConfig(eta=0.05, delta=0.05, max_iter=30, record_at=rec)
    progress: list[tuple[int, int]] = []
    res = nspgd(model, x, y, t, cfg, on_step=lambda i, n: progress.append((i, n)))
    with torch.no_grad():
        p_start = _p(model, x, y)
        p_end = _p(model, res.x_final, y)
        pred_end = model(res.x_final).argmax(1)
    # Every accepted step kept p_c(x0) - p_c(x) < delta, so the final point does.
    assert bool((p_start - p_end < cfg.delta + 1e-6).all())
    assert torch.allclose(res.p_source_final, p_end, atol=1e-6)
    assert torch.allclose(res.p_source_start, p_start, atol=1e-6)
    assert torch.equal(res.still_source, pred_end == y)
    assert bool((res.accepted_steps <= cfg.max_iter).all())
    assert torch.allclose(res.remaining_l2, (res.x_final - t).flatten(1).norm(dim=1), atol=1e-6)
    assert bool((res.closure <= 1).all()) and float(res.closure.max()) > 0
    # A pair is at point x_i iff it made i accepted steps; x_0 is the source.
    for k, i in enumerate(rec):
        assert torch.equal(res.path_valid[:, k], res.accepted_steps >= i)
    assert torch.equal(res.path_points[:, 0], x)
    norms = res.path_dirs[res.path_valid].flatten(1).norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    # A pair that walked all the way was at its final point x_K = x_{K-1} + its last step.
    assert progress[0][0] == 1 and all(a >= b for (_, a), (_, b) in zip(progress, progress[1:]))


def test_zero_iterations_and_bad_configs():
    model = trained_tiny_cnn()
    x, y = bar_images(4, seed=33)
    res = nspgd(model, x, y, torch.roll(x, 1, 0), NSPGDConfig(max_iter=0))
    assert torch.equal(res.x_final, x) and res.accepted_steps.tolist() == [0] * 4
    assert res.closure.tolist() == [0.0] * 4
    with pytest.raises(ValueError, match="record_at"):
        NSPGDConfig(max_iter=10, record_at=(10,))
    with pytest.raises(ValueError, match="eta"):
        NSPGDConfig(eta=0.0)


class _StopAtThreshold(nn.Module):
    """Two classes on images of shape (1, 1, 2): class 0 with a large margin while ``x[1] > x[0]``,
    a coin toss once ``x[1] <= x[0]``. Its input gradient is exactly zero, so NSPGD never projects
    and walks straight: ``x_i[1] = (1 - eta)^i`` from a source with ``x[1] = 1`` toward a target
    with ``x[1] = 0`` and the same ``x[0]``. A pair whose ``x[0]`` lies between ``(1 - eta)^(s + 1)``
    and ``(1 - eta)^s`` is refused at iteration ``s``: it makes exactly ``s`` accepted steps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        high = (flat[:, 1] > flat[:, 0]).to(x.dtype) * 10.0 + 0.0 * flat.sum(dim=1)
        return torch.stack([high, torch.zeros_like(high)], dim=1)


def _pairs_stopping_at(stops: list[int], eta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    thr = torch.tensor([(1 - eta) ** (s + 0.5) for s in stops], dtype=torch.float64)
    x0 = torch.stack([thr, torch.ones_like(thr)], dim=1).view(-1, 1, 1, 2)
    t = torch.stack([thr, torch.zeros_like(thr)], dim=1).view(-1, 1, 1, 2)
    return x0, torch.zeros(len(stops), dtype=torch.long), t


@pytest.mark.parametrize("step", range(7))
def test_several_pairs_refused_at_the_same_iteration_at_every_position(step):
    """Several pairs stop at the same iteration, at every position of the loop: alone among the
    walkers (the batch empties there), together with pairs that walk on, and after others stopped."""
    eta, k = 0.2, 6
    model = _StopAtThreshold().double()
    cfg = NSPGDConfig(eta=eta, delta=0.05, max_iter=k, record_at=(0, 2, 5))
    for stops in ([step] * 4, [step, step, step + 3, step + 3, 0, step], [step, 1, step, 9, step]):
        x0, c, t = _pairs_stopping_at(stops, eta)
        res = nspgd(model, x0, c, t, cfg)
        expected = [min(s, k) for s in stops]
        assert res.accepted_steps.tolist() == expected
        walked = torch.tensor([(1 - eta) ** s for s in expected], dtype=torch.float64)
        assert torch.allclose(res.x_final[:, 0, 0, 1], walked, rtol=1e-12)
        assert torch.allclose(res.remaining_l2, walked, rtol=1e-12)
        finals, steps, points, valid = _reference_nspgd(model, x0, c, t, cfg)
        assert res.accepted_steps.tolist() == steps.tolist()
        assert torch.allclose(res.x_final, finals, atol=1e-12)
        assert torch.equal(res.path_valid, valid)
        # Pairs with the same stopping step give identical values.
        for a in range(len(stops)):
            for b in range(len(stops)):
                if expected[a] == expected[b]:
                    assert res.remaining_l2[a] == res.remaining_l2[b]
