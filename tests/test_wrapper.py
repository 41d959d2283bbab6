"""The model wrapper: eval mode, frozen parameters, normalisation inside, inputs in [0, 1], logit shape at load."""

from __future__ import annotations

import pytest
import torch
from cards_helpers import TINY_INPUT, tiny_model
from torch import nn

from invarbench.attacks._tensors import check_finite_logits
from invarbench.errors import ModelOutputError, ValidationError
from invarbench.models.wrapper import ModelWrapper

INPUT_SIZE_HINT = "): check preprocessing.input_size in the card, or what the model's forward raises on such an input"


def wrap(model: nn.Module | None = None, **kwargs) -> ModelWrapper:
    kwargs.setdefault("num_classes", 3)
    kwargs.setdefault("input_shape", TINY_INPUT)
    return ModelWrapper(model if model is not None else tiny_model(), **kwargs)


class _Fixed(nn.Module):
    """Returns whatever ``make(x)`` builds: a stand-in for a misbehaving model."""

    def __init__(self, make) -> None:
        super().__init__()
        self.make = make

    def forward(self, x):
        return self.make(x)


def test_eval_mode_and_frozen_parameters():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.Dropout(0.9))
    wrapper = wrap(model.train())
    assert not model.training and not wrapper.training
    wrapper.train()  # a wrapped model stays in eval mode: dropout and batch norm never switch
    assert not model.training and not wrapper.training
    assert all(not p.requires_grad for p in model.parameters())
    x = torch.rand(4, *TINY_INPUT)
    assert torch.equal(wrapper(x), wrapper(x))


def test_gradients_reach_the_input_only():
    wrapper = wrap()
    x = torch.rand(2, *TINY_INPUT, requires_grad=True)
    wrapper(x).sum().backward()
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)
    assert all(p.grad is None for p in wrapper.parameters())


def test_normalisation_happens_inside():
    model = tiny_model()
    wrapper = wrap(model, mean=[0.5], std=[0.25])
    x = torch.rand(3, *TINY_INPUT)
    with torch.no_grad():
        assert torch.allclose(wrapper(x), model((x - 0.5) / 0.25))
        assert torch.equal(wrap(model)(x), model(x))  # no mean/std: the identity


def test_inputs_outside_the_unit_range_are_refused():
    wrapper = wrap()
    x = torch.rand(2, *TINY_INPUT)
    x[0, 0, 0, 0] = 255.0
    with pytest.raises(ValidationError) as info:
        wrapper(x)
    assert str(info.value).startswith("model inputs must be images in [0, 1], got values in [")
    assert str(info.value).endswith(", 255]")
    wrapper(torch.rand(2, *TINY_INPUT).clamp(0, 1) + 5e-6)  # float rounding after an attack step is tolerated


def test_inputs_of_another_shape_are_refused():
    with pytest.raises(ValidationError) as info:
        wrap()(torch.rand(2, 3, 8, 8))
    assert str(info.value) == (
        "model inputs must be a batch of images of size [1, 8, 8], got a tensor of shape [2, 3, 8, 8]"
    )


def test_trusted_inputs_skip_the_checks_and_restore_them():
    wrapper = wrap()
    x = torch.full((1, *TINY_INPUT), 2.0)
    with wrapper.trusted_inputs():
        wrapper(x)
    with pytest.raises(ValidationError):
        wrapper(x)


def test_mean_std_are_checked():
    with pytest.raises(ValidationError) as info:
        wrap(mean=[0.5, 0.5], std=[1.0, 1.0])
    assert str(info.value) == "preprocessing mean/std need 1 values (one per channel), got 2 and 2"
    with pytest.raises(ValidationError, match="^preprocessing std must be positive$"):
        wrap(mean=[0.5], std=[0.0])


def test_output_shape_check_passes_for_the_right_classes():
    wrap().check_output_shape()


def test_wrong_number_of_classes():
    with pytest.raises(ModelOutputError) as info:
        wrap(num_classes=10).check_output_shape(where="model card X")
    assert str(info.value) == (
        "model card X: the model returns [2, 3] for a batch of 2 inputs of size [1, 8, 8]; expected [2, 10] logits: "
        "check num_classes and the architecture's kwargs in the card"
    )


def test_a_model_that_returns_no_tensor():
    with pytest.raises(ModelOutputError) as info:
        wrap(_Fixed(lambda x: {"logits": x})).check_output_shape()
    assert str(info.value) == (
        "the model returns dict for a batch of 2 inputs of size [1, 8, 8]; expected [2, 3] logits: check "
        "num_classes and the architecture's kwargs in the card"
    )


def test_a_model_that_fails_on_the_input_size():
    with pytest.raises(ModelOutputError) as info:
        wrap(input_shape=[1, 16, 16]).check_output_shape(where="W")
    message = str(info.value)
    assert message.startswith("W: the model fails on a batch of 2 mid-grey inputs of size [1, 16, 16] (RuntimeError: ")
    assert message.endswith(
        "): check preprocessing.input_size in the card, or what the model's forward raises on such an input"
    )


def test_integer_logits_are_refused():
    with pytest.raises(ModelOutputError) as info:
        wrap(_Fixed(lambda x: torch.zeros(x.shape[0], 3, dtype=torch.int64))).check_output_shape()
    assert str(info.value) == "the model returns torch.int64 values; expected floating-point logits"


def test_non_finite_logits():
    check_finite_logits(torch.zeros(3, 2))
    logits = torch.zeros(3, 2)
    logits[1, 0] = float("nan")
    logits[2, 1] = float("inf")
    with pytest.raises(ModelOutputError) as info:
        check_finite_logits(logits)
    assert str(info.value) == "the model returned NaN or Inf logits for 2 of 3 examples"
