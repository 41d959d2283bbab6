"""APGD-CE and APGD-T (invarbench.attacks.apgd) against analytic ground truth on linear models, a
model whose cross-entropy gradient vanishes, and running every step."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import LinearImageModel, mid_images, random_linear
from torch import nn

from invarbench.attacks.apgd import APGDConfig, apgd_attack, checkpoints, dlr_targeted_loss


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _linear_min_dist(model: LinearImageModel, x: torch.Tensor, y: torch.Tensor, norm: str) -> torch.Tensor:
    """Exact minimal distance (away from the box) to the region where ``y`` is not the argmax:
    ``min_j (f_y - f_j) / ||w_y - w_j||_*`` with ``||.||_*`` the dual norm (L1 for L-inf, L2 for L2)."""
    w = model.weight.double()
    logits = x.flatten(1).double() @ w.T + model.bias.double()
    margin = logits.gather(1, y[:, None]) - logits
    wd = w[y][:, None, :] - w[None, :, :]
    dual = wd.abs().sum(2) if norm == "linf" else wd.norm(dim=2)
    dist = margin / dual.clamp_min(1e-30)
    dist[torch.arange(x.shape[0]), y] = float("inf")
    return dist.min(dim=1).values


def _spread_model(classes: int, seed: int) -> tuple[LinearImageModel, torch.Tensor, torch.Tensor]:
    model = random_linear(classes, scale=0.3, seed=seed)
    x = mid_images(200, spread=0.08, seed=seed + 1)
    with torch.no_grad():
        y = model(x).argmax(1)  # every example correctly classified: only the attack can break it
    return model, x, y


def test_the_checkpoints_are_the_papers_for_100_steps():
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(10) == [2, 3, 4, 5, 6, 7, 8, 9, 10]


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_apgd_ce_on_a_binary_linear_model_breaks_exactly_the_examples_within_the_minimal_distance(norm):
    model, x, y = _spread_model(2, seed=3)
    dist = _linear_min_dist(model, x, y, norm)
    eps = float(dist.median())  # half the examples lie within the budget
    res = apgd_attack(model, x, y, APGDConfig(norm, eps, steps=20), generator=_gen(0))
    above = dist < eps * 0.99  # the budget is just above the minimal distance: must break
    below = dist > eps * 1.0001  # the budget is just below: nothing can break it
    near = (dist > eps * 0.95) & (dist < eps * 1.05)
    assert int(above.sum()) > 10 and int(below.sum()) > 10 and int(near.sum()) >= 3
    assert bool((~res.robust[above]).all()), dist[above & res.robust]
    assert bool(res.robust[below].all())
    # Its adversarial examples are misclassified, inside the ball and the box.
    broken = ~res.robust
    assert bool((model(res.x_adv[broken]).argmax(1) != y[broken]).all())
    delta = (res.x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps * (1 + 1e-5) and float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("seed", [5, 6])
def test_apgd_t_on_a_ten_class_linear_model_breaks_every_example_just_inside_its_minimal_distance(norm, seed):
    model, x, y = _spread_model(10, seed=seed)
    dist = _linear_min_dist(model, x, y, norm)
    eps = float(dist.median())
    res = apgd_attack(model, x, y, APGDConfig(norm, eps, steps=50, loss="dlr_targeted", targets=9), generator=_gen(1))
    above = dist < eps * 0.98
    below = dist > eps * 1.0001
    assert int(above.sum()) > 10 and int(below.sum()) > 10
    assert bool((~res.robust[above]).all()), (dist[above & res.robust] / eps).tolist()
    assert bool(res.robust[below].all())
    runs = 9
    assert bool((res.broken_at[res.robust] == runs * 51).all())
    assert bool((res.broken_at[~res.robust] < runs * 51).all() and (res.broken_at[~res.robust] >= 0).all())


class Saturated(nn.Module):
    """A linear model whose logits are multiplied by 10^5: at every correctly classified example whose
    margin is at least 0.01 the softmax is exactly one-hot in float32, so the cross-entropy and its
    gradient are exactly 0 there, while the decisions (and the minimal distances) are those of the linear model."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1e5 * self.inner(x)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_apgd_t_is_never_weaker_than_apgd_ce_where_the_cross_entropy_gradient_vanishes(norm):
    inner, x, y = _spread_model(10, seed=8)
    with torch.no_grad():
        top2 = inner(x).topk(2, dim=1).values
    keep = top2[:, 0] - top2[:, 1] > 0.01
    x, y = x[keep], y[keep]
    eps = float(_linear_min_dist(inner, x, y, norm).median())
    model = Saturated(inner)
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(xr), y, reduction="sum"), xr)
    assert float(grad.abs().max()) == 0.0  # the model is what the test says it is
    dist = _linear_min_dist(inner, x, y, norm)
    ce = apgd_attack(model, x, y, APGDConfig(norm, eps, steps=30), generator=_gen(2))
    t = apgd_attack(model, x, y, APGDConfig(norm, eps, steps=30, loss="dlr_targeted"), generator=_gen(2))
    assert bool((t.robust <= ce.robust).all())  # every example APGD-T leaves robust, APGD-CE does too
    assert float(t.robust.float().mean()) < float(ce.robust.float().mean())
    assert bool((~t.robust[dist < eps * 0.98]).all())  # and APGD-T finds the breaks the geometry allows


@pytest.mark.parametrize("loss", ["ce", "dlr_targeted"])
@pytest.mark.parametrize("norm, eps", [("linf", 0.03), ("l2", 0.25)])
def test_early_exit_matches_running_every_step(loss, norm, eps):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 6)).eval().requires_grad_(False)
    x = mid_images(120, spread=0.1, seed=4)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:5] = (y[:5] + 1) % 6  # a few misclassified clean
    cfg = dict(norm=norm, eps=eps, steps=25, restarts=2, loss=loss, targets=3)
    seen: list[tuple[int, int]] = []
    fast = apgd_attack(model, x, y, APGDConfig(**cfg), generator=_gen(3), on_step=lambda s, n: seen.append((s, n)))
    slow = apgd_attack(model, x, y, APGDConfig(**cfg, early_exit=False), generator=_gen(3))
    assert torch.equal(fast.robust, slow.robust) and torch.equal(fast.broken_at, slow.broken_at)
    assert 0 < int(fast.robust.sum()) < 115
    assert fast.broken_at[:5].tolist() == [-1] * 5
    assert fast.forward_backward_passes < slow.forward_backward_passes
    assert [s for s, _ in seen] == list(range(1, len(seen) + 1))
    again = apgd_attack(model, x, y, APGDConfig(**cfg), generator=_gen(3))
    assert torch.equal(again.x_adv, fast.x_adv)


def test_the_targeted_dlr_loss_is_the_papers_and_shift_and_scale_invariant():
    z = torch.tensor([[4.0, 1.0, 3.0, 0.0, 2.0]])
    y, t = torch.tensor([0]), torch.tensor([2])
    # sorted: 4, 3, 2, 1, 0 -> denominator 4 - (2 + 1) / 2 = 2.5; numerator -(4 - 3) = -1
    assert float(dlr_targeted_loss(z, y, t)) == pytest.approx(-1 / 2.5)
    assert float(dlr_targeted_loss(7 * z - 3, y, t)) == pytest.approx(-1 / 2.5)


def test_invalid_settings_and_too_few_classes_raise():
    with pytest.raises(ValueError):
        APGDConfig("l1", 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        APGDConfig("linf", 0.1, loss="dlr")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        APGDConfig("linf", 0.1, steps=0)
    model = random_linear(3)
    x = mid_images(4)
    with pytest.raises(ValueError, match="at least 4 classes"):
        apgd_attack(model, x, model(x).argmax(1), APGDConfig("linf", 0.1, loss="dlr_targeted"))
