"""Host-device synchronisations inside the attack loops, counted (tests/sync_helpers.py) on a
model that nothing breaks, so every example runs every step: per step, only the decisions that
need a value on the host (which examples leave the batch) may wait for the device. The counts are
kept here: a change that adds a synchronisation to a loop changes them."""

from __future__ import annotations

import pytest
import torch
from sync_helpers import CountSyncs
from torch import nn

from invarbench.attacks.apgd import APGDConfig, apgd_attack
from invarbench.attacks.minnorm import MinNormConfig, min_l2_distance
from invarbench.attacks.nspgd import NSPGDConfig, nspgd
from invarbench.attacks.pathwidth import PathWidthConfig, path_widths
from invarbench.attacks.pgd import PGDConfig, pgd_attack


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        model[1].bias[0] = 1000.0  # class 0 whatever the image: no example ever breaks
    return model


X = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
Y = torch.zeros(6, dtype=torch.long)


def _syncs(run) -> int:
    with CountSyncs() as syncs:
        run()
    return syncs.total


def _per_step(attack) -> float:
    """Syncs per step: the difference between 8 and 4 steps, over 4 (what the setup costs cancels)."""
    return (_syncs(lambda: attack(8)) - _syncs(lambda: attack(4))) / 4


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_the_counter_sees_what_waits_for_the_device():
    t = torch.ones(3)
    assert _syncs(lambda: (t.sum().item(), bool(t.any()), int(t.sum()), t.tolist(), t[t > 0], torch.nonzero(t))) == 6
    assert _syncs(lambda: (t + 1, t[1:], t.sum(), torch.where(t > 0, t, 0))) == 0


@pytest.mark.parametrize("norm, eps", [("l2", 1.0), ("linf", 0.1)])
def test_pgd_waits_once_per_step_to_learn_which_examples_broke(net, norm, eps):
    def attack(steps):
        cfg = PGDConfig(norm=norm, eps=eps, steps=steps, cycle_detection=False)
        return pgd_attack(net, X, Y, cfg, generator=_gen())

    assert _per_step(attack) == 1


def test_pgd_cycle_detection_waits_at_most_once_more_per_step(net):
    cfg = PGDConfig(norm="linf", eps=0.1, steps=8, cycle_detection=True)
    assert _syncs(lambda: pgd_attack(net, X, Y, cfg, generator=_gen())) <= 4 + 2 * 8


def test_apgd_waits_five_times_per_step(net):
    # the examples that broke (1), and four boolean-mask updates of the best iterates and losses,
    # which torch.where would make free
    def attack(steps):
        return apgd_attack(net, X, Y, APGDConfig("linf", 0.1, steps, 1, "ce", 9), generator=_gen())

    assert _per_step(attack) == 5


def test_fmn_never_waits_inside_its_loop(net):
    assert _per_step(lambda steps: min_l2_distance(net, X, Y, MinNormConfig(steps=steps))) == 0


def test_nspgd_waits_twice_per_iteration_to_stop_finished_walks(net):
    assert _per_step(lambda steps: nspgd(net, X, Y, X.flip(0), NSPGDConfig(max_iter=steps))) == 2


def test_path_widths_never_wait(net):
    def widths(points):
        dirs = torch.randn(points, 1, 28, 28, generator=_gen())
        dirs[0] = 0  # a point without a direction to remove
        cls = torch.zeros(points, dtype=torch.long)
        return path_widths(net, X[:points], dirs, cls, PathWidthConfig(directions=8), generator=_gen())

    assert _syncs(lambda: widths(2)) == _syncs(lambda: widths(6)) == 0
