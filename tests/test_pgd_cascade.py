"""The robust-accuracy cascade of ``pgd_linf`` / ``pgd_l2`` (PGD, then APGD-CE, then APGD-T on the
examples still robust): its worst case per example is never above any single attack's robust
accuracy, and its per-example fields say which attack broke each example and when."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import mid_images, random_linear

from invarbench.attacks.apgd import APGDConfig, apgd_attack
from invarbench.attacks.pgd import pgd_attack
from invarbench.measurements import MEASUREMENTS
from invarbench.measurements.base import BatchContext
from invarbench.measurements.pgd import APGDSettings, PGDL2Settings, PGDLinfSettings


def _ctx(model, x, y, seed: int) -> BatchContext:
    with torch.no_grad():
        logits = model(x)
    return BatchContext(
        model=model,
        data=None,  # type: ignore[arg-type] - the cascade does not read the whole data set
        start=0,
        stop=x.shape[0],
        x=x,
        y=y,
        logits=logits,
        pred=logits.argmax(1),
        correct=logits.argmax(1) == y,
        device=x.device,
        suite=None,
        generator=torch.Generator().manual_seed(seed),
        results={},
    )


def _setup(norm: str):
    model = random_linear(10, scale=0.3, seed=11)
    x = mid_images(150, spread=0.08, seed=12)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:6] = (y[:6] + 3) % 10  # a few misclassified clean
    # Budgets near the median minimal distance, with PGD weakened (few, small steps) so that the
    # later attacks of the cascade have something to find.
    if norm == "linf":
        cfg = PGDLinfSettings(eps=0.008, steps=3, step_size=0.001, apgd=APGDSettings(steps=30, targets=9))
    else:
        cfg = PGDL2Settings(eps=0.05, steps=3, step_size=0.005, apgd=APGDSettings(steps=30, targets=9))
    return model, x, y, cfg


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_the_cascade_is_never_above_any_single_attack_and_records_who_broke_what(norm):
    model, x, y, cfg = _setup(norm)
    out = MEASUREMENTS.get(f"pgd_{norm}").measure(_ctx(model, x, y, seed=0), cfg).fields
    robust = torch.tensor(out["robust"])
    n = x.shape[0]

    # The single attacks, each on every example, with generators of their own.
    pgd = pgd_attack(model, x, y, cfg, generator=torch.Generator().manual_seed(0))
    singles = {"pgd": pgd.robust}
    for name, loss in (("apgd_ce", "ce"), ("apgd_t", "dlr_targeted")):
        acfg = APGDConfig(norm, cfg.eps, cfg.apgd.steps, cfg.apgd.restarts, loss, cfg.apgd.targets)
        singles[name] = apgd_attack(model, x, y, acfg, generator=torch.Generator().manual_seed(7)).robust
    for name, single in singles.items():
        assert float(robust.float().mean()) <= float(single.float().mean()), name
    # PGD runs first with the measurement's generator, so its robust set bounds the cascade's exactly.
    assert bool((robust <= pgd.robust).all())
    assert out["broken_at"] == pgd.broken_at.tolist()
    # Each later attack really found something here (the test is not about PGD alone).
    assert {"clean", "pgd", "apgd_ce", "apgd_t", None} == set(out["broken_by"])

    steps_ce = cfg.apgd.restarts * (cfg.apgd.steps + 1)
    steps_t = 9 * steps_ce
    for i in range(n):
        by, ce, t = out["broken_by"][i], out["apgd_ce_broken_at"][i], out["apgd_t_broken_at"][i]
        assert (by is None) == bool(robust[i])
        if by == "clean":
            assert out["broken_at"][i] == -1 and ce is None and t is None
        elif by == "pgd":
            assert 0 <= out["broken_at"][i] < cfg.steps + 1 and ce is None and t is None
        elif by == "apgd_ce":
            assert 0 <= ce < steps_ce and t is None
        elif by == "apgd_t":
            assert ce == steps_ce and 0 <= t < steps_t
        else:  # robust: every attack ran to the end
            assert out["broken_at"][i] == cfg.steps + 1 and ce == steps_ce and t == steps_t


def test_without_apgd_settings_the_measurement_is_pgd_alone():
    model, x, y, cfg = _setup("linf")
    cfg = PGDLinfSettings(eps=cfg.eps, steps=cfg.steps, step_size=cfg.step_size)
    out = MEASUREMENTS.get("pgd_linf").measure(_ctx(model, x, y, seed=0), cfg).fields
    pgd = pgd_attack(model, x, y, cfg, generator=torch.Generator().manual_seed(0))
    assert out == {"robust": pgd.robust.tolist(), "broken_at": pgd.broken_at.tolist()}
