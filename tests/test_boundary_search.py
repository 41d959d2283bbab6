"""The gradient-free boundary search against analytic linear models, its endpoints, the flag it
raises; the batch-dependence check; non-finite logits under attack; Wilson bounds at the edges."""

from __future__ import annotations

import math

import pytest
import torch
from attack_helpers import LinearImageModel, linear_min_l2, mid_images, random_linear
from torch import nn

from invarbench.attacks.checks import ReliabilityConfig, reliability_report
from invarbench.attacks.minnorm import boundary_search_l2
from invarbench.data.registry import EvalData
from invarbench.errors import ModelOutputError
from invarbench.evaluation.measure import measure_batch
from invarbench.measurements import result_flags
from invarbench.measurements.min_norm import nearest_other_class_endpoints
from invarbench.metrics.stats import wilson_interval
from invarbench.models.wrapper import ModelWrapper
from invarbench.suites.schema import load_suite

CPU = torch.device("cpu")


def _two_class(seed: int = 0) -> LinearImageModel:
    return random_linear(2, scale=0.3, seed=seed).double()


def test_bisection_lands_on_the_analytic_crossing_of_each_segment():
    model = _two_class()
    x = mid_images(6, spread=0.05, seed=2).double()
    y = model(x).argmax(dim=1)
    ends = torch.stack([mid_images(6, spread=0.3, seed=s).double() for s in (3, 4, 5)], dim=1)  # [6, 3, 1, 8, 8]
    res = boundary_search_l2(model, x, y, ends, refine_steps=30)
    w = model.weight[y] - model.weight[1 - y]  # margin f_y - f_other = w.x + b_y - b_other, linear along a segment
    b = model.bias[y] - model.bias[1 - y]
    expected = torch.full((6,), math.inf, dtype=torch.float64)
    for i in range(6):
        for j in range(3):
            m0 = float(w[i] @ x[i].flatten() + b[i])
            m1 = float(w[i] @ ends[i, j].flatten() + b[i])
            if m1 < 0:  # the endpoint is adversarial: the margin crosses 0 at s* = m0 / (m0 - m1)
                length = float((ends[i, j] - x[i]).norm())
                expected[i] = min(expected[i], m0 / (m0 - m1) * length)
    assert torch.isfinite(expected).sum() >= 3  # the test covers both cases
    assert torch.equal(torch.isfinite(res.distance), torch.isfinite(expected))
    ok = torch.isfinite(expected)
    assert torch.allclose(res.distance[ok], expected[ok], rtol=0, atol=1e-7)
    assert bool((res.distance[ok] >= expected[ok]).all())  # hi stays on the adversarial side
    # The returned points are adversarial, at the returned distance, and the bound is honest:
    # never below the exact minimal distance.
    assert bool((model(res.x_adv[ok]).argmax(dim=1) != y[ok]).all())
    assert torch.allclose((res.x_adv - x).flatten(1).norm(dim=1)[ok], res.distance[ok])
    exact, _ = linear_min_l2(model, x, y)
    assert bool((res.distance[ok] >= exact[ok] - 1e-12).all())
    assert res.endpoint[~ok].tolist() == [-1] * int((~ok).sum())
    assert torch.equal(res.x_adv[~ok], x[~ok])


def test_no_endpoints_or_no_refinement():
    model = _two_class()
    x = mid_images(3, seed=2).double()
    y = model(x).argmax(dim=1)
    empty = boundary_search_l2(model, x, y, x[:, None][:, :0])
    assert empty.distance.tolist() == [math.inf] * 3 and empty.forward_passes == 0
    # Without refinement the distance is the whole segment to an adversarial endpoint.
    far = mid_images(3, spread=0.3, seed=9).double()[:, None]
    coarse = boundary_search_l2(model, x, y, far, refine_steps=0)
    adv = model(far[:, 0]).argmax(dim=1) != y
    lengths = (far[:, 0] - x).flatten(1).norm(dim=1)
    assert torch.equal(coarse.distance, torch.where(adv, lengths, torch.full_like(lengths, math.inf)))
    with pytest.raises(ValueError, match="endpoints"):
        boundary_search_l2(model, x, y, x)


def _class_mean_data(n: int = 30, seed: int = 0) -> tuple[EvalData, LinearImageModel]:
    """Three classes of 8x8 images around three grey levels, and a linear model that tells them apart
    except for the examples placed on purpose near another class."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = (
        0.2 + 0.3 * y.double()[:, None, None, None] + 0.05 * torch.randn(n, 1, 8, 8, generator=gen, dtype=torch.float64)
    ).clamp(0, 1)
    weight = torch.stack([-(torch.ones(64)), torch.zeros(64), torch.ones(64)]).double() * 4
    bias = torch.tensor([4 * 64 * 0.35, 0.0, -4 * 64 * 0.65], dtype=torch.float64) / 1.0
    model = LinearImageModel(weight, bias).double()
    data = EvalData(dataset="test", split="test", x=x.float(), y=y, total=n, source="test")
    return data, model


def test_endpoints_are_the_nearest_images_of_other_classes_the_model_does_not_give_the_source_class():
    data, model = _class_mean_data()
    model = model.float()
    pred = model(data.x).argmax(dim=1)
    examples = torch.arange(0, 12)
    got = nearest_other_class_endpoints(model, data, examples, 3, CPU)
    flat = data.x.flatten(1).double()
    for r, i in enumerate(examples.tolist()):
        d = (flat - flat[i]).norm(dim=1)
        allowed = (data.y != data.y[i]) & (pred != data.y[i])
        order = sorted(torch.nonzero(allowed).squeeze(1).tolist(), key=lambda j: (float(d[j]), j))
        assert got[r].tolist() == order[:3]
    # An example's endpoints do not depend on which other examples share its batch.
    alone = torch.cat([nearest_other_class_endpoints(model, data, examples[i : i + 1], 3, CPU) for i in range(12)])
    assert torch.equal(alone, got)


def _suite_for_8x8():
    """quick/mnist5k without human_invariance, whose probe images are MNIST's 1x28x28 (these tests use 8x8)."""
    suite = load_suite("quick", "mnist5k")
    return suite.model_copy(update={"measurements": suite.measurements.replace(human_invariance=None)})


def test_a_model_that_predicts_one_class_everywhere_has_no_endpoints_and_infinite_search():
    data, _ = _class_mean_data()
    constant = LinearImageModel(torch.zeros(3, 64), torch.tensor([0.0, 5.0, 0.0]))
    got = nearest_other_class_endpoints(constant, data, torch.tensor([1, 4]), 2, CPU)
    assert got.tolist() == [[1, 1], [4, 4]]  # its own index: no segment at all
    res = boundary_search_l2(constant, data.x[[1, 4]], data.y[[1, 4]], data.x[got])
    assert res.distance.tolist() == [math.inf, math.inf]


def test_min_norm_is_the_smaller_of_fmn_and_the_search_and_keeps_which_gave_it():
    data, model = _class_mean_data(n=24)
    wrapped = ModelWrapper(model.float(), num_classes=3, input_shape=(1, 8, 8))
    suite = _suite_for_8x8()
    out = measure_batch(wrapped, data, 0, 24, suite, torch.Generator().manual_seed(0))[0]
    mn, correct = out["min_norm"], out["clean"]["correct"]
    for d, f, s, method, ok in zip(mn["distance"], mn["fmn_distance"], mn["search_distance"], mn["method"], correct):
        if not ok:
            assert (d, method) == (0.0, "misclassified")
            continue
        assert d == min(f, s) and math.isfinite(d)
        assert method == ("search" if s < f else "fmn")
    # On a linear model FMN finds the exact distance: the search never beats it, no flag.
    assert "search" not in mn["method"]
    assert result_flags(out, suite) == []


def test_gradient_attack_weaker_than_search_counts_correct_examples_only():
    suite = load_suite("quick", "mnist5k")
    share = suite.checks.search_beats_gradient_fraction

    def values(search: int, fmn: int, wrong: int) -> dict:
        return {"min_norm": {"method": ["search"] * search + ["fmn"] * fmn + ["misclassified"] * wrong}}

    at = round(share * 100)
    assert result_flags(values(at, 100 - at, 50), suite) == []
    assert result_flags(values(at + 1, 100 - at - 1, 0), suite) == ["gradient_attack_weaker_than_search"]
    assert result_flags({"clean": {}}, suite) == []


# --- batch-dependent outputs ---------------------------------------------------------------------------
class _BatchStats(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(1, track_running_stats=False)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.bn(x))


def test_batch_dependent_outputs_flag():
    base = random_linear(3, seed=1)
    x = mid_images(10, spread=0.2, seed=3)
    y = base(x).argmax(dim=1)
    plain = reliability_report(base, x, y)
    assert "batch_dependent_outputs" not in plain.flags and plain.max_batch_change < 1e-4
    hostile = reliability_report(_BatchStats(base), x, y)
    assert "batch_dependent_outputs" in hostile.flags and hostile.max_batch_change > 1e-2
    # A tolerance above the change lets it pass: the flag reads the measured change.
    loose = ReliabilityConfig(batch_atol=hostile.max_batch_change * 2)
    assert "batch_dependent_outputs" not in reliability_report(_BatchStats(base), x, y, loose).flags


# --- non-finite logits under attack ------------------------------------------------------------------
class _NaNAwayFromClean(nn.Module):
    def __init__(self, net: nn.Module, clean: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.clean = clean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        known = (x.flatten(1)[:, None] == self.clean.flatten(1)[None]).all(dim=2).any(dim=1)
        return torch.where(known[:, None], logits, torch.full_like(logits, math.nan))


def test_every_measurement_refuses_nan_logits_at_any_iterate():
    data, model = _class_mean_data(n=12)
    model = model.float()
    suite = _suite_for_8x8()
    hostile = ModelWrapper(_NaNAwayFromClean(model, data.x), num_classes=3, input_shape=(1, 8, 8))
    with pytest.raises(ModelOutputError, match=r"NaN or Inf logits for \d+ input\(s\) during pgd_linf"):
        measure_batch(hostile, data, 0, 12, suite, torch.Generator().manual_seed(0))[0]
    # Each measurement on its own: the first one to meet a NaN is named.
    for keep in ("pgd_l2", "min_norm", "nspgd"):
        only = suite.model_copy(
            update={
                "measurements": suite.measurements.replace(
                    **{name: None for name in suite.measurements if name != keep}
                )
            }
        )
        hostile.reset_nonfinite()
        with pytest.raises(ModelOutputError, match=f"during {keep}"):
            measure_batch(hostile, data, 0, 12, only, torch.Generator().manual_seed(0))[0]


def test_the_wrapper_counts_rows_with_nonfinite_logits():
    model = ModelWrapper(random_linear(3, seed=1), num_classes=3, input_shape=(1, 8, 8))
    x = mid_images(4, seed=2)
    model(x)
    assert model.nonfinite_count() == 0
    model.model.bias.data[1] = math.inf
    model(x)
    model(x[:2])
    assert model.nonfinite_count() == 6
    model.reset_nonfinite()
    assert model.nonfinite_count() == 0


# --- interval edges ------------------------------------------------------------------------------------
def test_wilson_interval_is_exact_at_the_edges_and_textbook_inside():
    z = 1.959963984540054
    for n in (1, 7, 200, 10_000):
        lo, hi = wilson_interval(0, n)
        assert lo == 0.0 and hi == pytest.approx(z * z / (n + z * z), rel=1e-12)
        lo, hi = wilson_interval(n, n)
        assert hi == 1.0 and lo == pytest.approx(n / (n + z * z), rel=1e-12)
    # Textbook value (Newcombe 1998, table I): 81 of 263 -> [0.2553, 0.3662].
    lo, hi = wilson_interval(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
