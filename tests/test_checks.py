"""Reliability checks: each flag is raised by a model built to trigger it and by no normal model;
NaN/Inf logits are an error, and the runner records the run as failed with it."""

from __future__ import annotations

import pytest
import torch
from data_helpers import class_mean_model

from invarbench.attacks.checks import FLAG_NAMES, ReliabilityConfig, reliability_flags, reliability_report
from invarbench.data import load_eval_data
from invarbench.errors import ModelOutputError
from invarbench.evaluation.measure import measure_batch


@pytest.fixture(scope="module")
def data():
    d = load_eval_data("mnist5k", limit=40)
    return d.x, d.y


@pytest.fixture(scope="module")
def normal():
    train = load_eval_data("mnist5k", split="train", limit=1000)
    return class_mean_model(train.x, train.y, scale=4.0).eval()


class _Then(torch.nn.Module):
    """``inner`` followed (or preceded) by a fixed transformation of its output (or input)."""

    def __init__(self, inner: torch.nn.Module, on_input=None, on_output=None) -> None:
        super().__init__()
        self.inner, self.on_input, self.on_output = inner, on_input, on_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.on_input is not None:
            x = self.on_input(x)
        out = self.inner(x)
        return out if self.on_output is None else self.on_output(out)


def _noisy(logits: torch.Tensor) -> torch.Tensor:
    return logits + 0.01 * torch.randn_like(logits)  # a randomised defence


def _quantised(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x * 4) / 4  # a step function: its input gradient is exactly zero


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(x)  # infinite slope at black pixels (0): Inf/NaN input gradients


@pytest.mark.parametrize(
    ("make", "flag"),
    [
        (lambda m: _Then(m, on_output=_noisy), "randomized_outputs"),
        (lambda m: _Then(m, on_output=lambda z: torch.softmax(z, dim=1)), "probability_outputs"),
        (lambda m: _Then(m, on_input=_quantised), "zero_gradients"),
        (lambda m: _Then(m, on_input=_sqrt), "nan_gradients"),
    ],
)
def test_each_flag_is_raised_by_the_model_built_to_trigger_it_and_only_that_flag(normal, data, make, flag):
    x, y = data
    assert reliability_flags(normal, x, y) == []
    assert reliability_flags(make(normal), x, y) == [flag]


def test_the_report_carries_the_measured_quantities(normal, data):
    x, y = data
    clean = reliability_report(normal, x, y)
    assert clean.flags == () and clean.max_output_change == 0.0 and clean.examples == 40
    assert clean.probability_rows == 0.0 and clean.zero_gradient_examples == 0.0 and clean.nan_gradient_examples == 0.0
    report = reliability_report(_Then(normal, on_output=lambda z: torch.softmax(z, dim=1)), x, y)
    assert report.probability_rows == 1.0
    # log-probabilities are logits up to a constant per row: no flag
    log_probs = _Then(normal, on_output=lambda z: torch.log_softmax(z, dim=1))
    assert reliability_flags(log_probs, x, y) == []


class _ZeroGradientFor(torch.nn.Module):
    """Cuts the input gradient of the first ``k`` examples of every batch (a partly masked model)."""

    def __init__(self, inner: torch.nn.Module, k: int) -> None:
        super().__init__()
        self.inner, self.k = inner, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[: self.k].detach(), x[self.k :]])
        return self.inner(x)


def test_zero_gradients_flag_needs_more_than_its_share_of_examples(normal, data):
    x, y = data  # 40 examples; the default share is 10 %: 4 masked examples are tolerated, 5 are not
    assert reliability_flags(_ZeroGradientFor(normal, 4), x, y) == []
    assert reliability_flags(_ZeroGradientFor(normal, 5), x, y) == ["zero_gradients"]
    lenient = ReliabilityConfig(zero_gradient_fraction=0.5)
    assert reliability_flags(_ZeroGradientFor(normal, 5), x, y, lenient) == []
    assert reliability_report(_ZeroGradientFor(normal, 5), x, y).zero_gradient_examples == 5 / 40


def test_only_the_first_max_examples_are_checked(normal, data):
    x, y = data
    report = reliability_report(_ZeroGradientFor(normal, 5), x, y, ReliabilityConfig(examples=10))
    assert report.examples == 10 and report.zero_gradient_examples == 0.5


def _nan_for_odd_rows(z: torch.Tensor) -> torch.Tensor:
    mask = torch.zeros(z.shape[0], 1, dtype=torch.bool)
    mask[1::2] = True
    return torch.where(mask, torch.full_like(z, float("nan")), z)


def test_nan_or_inf_logits_are_an_error_not_a_flag(normal, data):
    x, y = data
    with pytest.raises(ModelOutputError, match=r"^the model returned NaN or Inf logits for 20 of 40 examples$"):
        reliability_report(_Then(normal, on_output=_nan_for_odd_rows), x, y)
    inf = _Then(normal, on_output=lambda z: z.index_fill(0, torch.tensor([0]), float("inf")))
    with pytest.raises(ModelOutputError, match=r"for 1 of 40 examples"):
        reliability_report(inf, x, y)


def test_measure_batch_refuses_nan_logits():
    from test_measure import make_suite  # the suite of the measurement tests

    data = load_eval_data("mnist5k", limit=8)
    train = load_eval_data("mnist5k", split="train", limit=200)
    model = _Then(class_mean_model(train.x, train.y, scale=4.0).eval(), on_output=_nan_for_odd_rows)
    with pytest.raises(ModelOutputError, match="NaN or Inf logits for 4 of 8 examples"):
        measure_batch(model, data, 0, 8, make_suite(), torch.Generator().manual_seed(0))[0]


def test_flag_names_are_stable():
    # stored with runs and shown on the leaderboard: renaming one is a breaking change
    assert FLAG_NAMES == (
        "randomized_outputs",
        "probability_outputs",
        "zero_gradients",
        "nan_gradients",
        "batch_dependent_outputs",
    )
