"""``invarbench.evaluate_model``: a model in memory gets the CLI's checks, pipeline and numbers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import invarbench
from invarbench.cards import resolve_card
from invarbench.errors import ModelOutputError, NotFoundError
from invarbench.evaluation import EvalOptions, evaluate
from invarbench.models.loading import load_model
from invarbench.store import Store

LIMIT = 16


@pytest.fixture(scope="module")
def lenet() -> nn.Module:
    return load_model(resolve_card("mnist5k/lenet-standard"), "cpu").wrapper.model


def test_a_model_in_memory_gives_the_numbers_of_its_card(lenet, tmp_path):
    """The bundled model, evaluated from memory, gives exactly what 'invarbench eval' gives for its card."""
    lenet.train()
    for p in lenet.parameters():
        p.requires_grad_(True)
    result = invarbench.evaluate_model(lenet, "mnist5k", "quick", device="cpu", limit=LIMIT, batch_size=8)
    assert lenet.training and all(p.requires_grad for p in lenet.parameters())  # given back as it was
    outcome = evaluate(
        resolve_card("mnist5k/lenet-standard"),
        Store(f"sqlite:///{tmp_path / 'r.db'}"),
        EvalOptions(suite="quick", device="cpu", limit=LIMIT, batch_size=8),
    )
    assert [m for m in result.metrics.values()] == outcome.metrics
    assert result.flags == outcome.flags and result.per_example == outcome.per_example
    assert result.provenance["examples_effective"] == LIMIT and result.provenance["model_dtype"] == "float32"
    assert result.run_id is None and result.suite.key == "quick/mnist5k"
    assert "robust_accuracy_linf" in str(result)


def test_with_db_the_run_is_stored(lenet, tmp_path):
    url = f"sqlite:///{tmp_path / 'api.db'}"
    result = invarbench.evaluate_model(lenet, device="cpu", limit=8, db=url, name="my-lenet")
    run = Store(url).get_run(result.run_id)
    assert run.status == "finished" and run.model.card_id == "mnist5k/my-lenet"
    assert {m.name: m.value for m in run.metrics} == {k: v.value for k, v in result.metrics.items()}


class _NaNAfterStep(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        clean = ((x * 255 - torch.round(x * 255)).abs() < 1e-3).flatten(1).all(dim=1) | (x == 0.5).flatten(1).all(1)
        return torch.where(clean[:, None], logits, torch.full_like(logits, math.nan))


def test_the_api_applies_the_cli_checks(lenet):
    with pytest.raises(ModelOutputError, match=r"model mnist5k/_NaNAfterStep: .*NaN or Inf logits .* during pgd_linf"):
        invarbench.evaluate_model(_NaNAfterStep(lenet), device="cpu", limit=8)
    with pytest.raises(ModelOutputError, match=r"returns \[2, 20\] .* expected \[2, 10\] logits"):
        invarbench.evaluate_model(nn.Sequential(lenet, nn.Linear(10, 20)), device="cpu", limit=8)
    with pytest.raises(NotFoundError, match="unknown dataset 'mnist6k'"):
        invarbench.evaluate_model(lenet, dataset="mnist6k")


def test_the_readme_example_runs_as_written(monkeypatch, capsys):
    """The README's Python example, executed from the repository root exactly as it is written."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    code = text.split("## From Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(root)
    exec(compile(code, "README.md", "exec"), {})  # the project's own documentation
    out = capsys.readouterr().out
    assert "robust_accuracy_linf" in out and "float32 50" in out


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mean": 0.5}, "mean must be a sequence of numbers, one per channel"),
        ({"seed": "1"}, "seed must be an integer, got '1'"),
        ({"limit": "16"}, "limit must be an integer"),
    ],
)
def test_arguments_of_the_wrong_type_get_one_clear_error(lenet, kwargs, message):
    from invarbench.errors import ValidationError

    with pytest.raises(ValidationError, match=message):
        invarbench.evaluate_model(lenet, device="cpu", **kwargs)
    with pytest.raises(ValidationError, match="model must be a torch.nn.Module, got function"):
        invarbench.evaluate_model(lambda x: lenet(x), device="cpu")


def test_normalisation_on_the_wrong_scale_or_half_given_is_refused(lenet):
    from invarbench.errors import ValidationError

    with pytest.raises(ValidationError, match="must be on the \\[0, 1\\] scale of the images"):
        invarbench.evaluate_model(lenet, device="cpu", mean=(130.0,), std=(78.0,))
    with pytest.raises(ValidationError, match="give both mean and std"):
        invarbench.evaluate_model(lenet, device="cpu", mean=(0.13,))
