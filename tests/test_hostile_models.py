"""Hostile but real models and data, end to end through ``invarbench eval``: each gives numbers, a
visible flag, or one clear line on stderr with exit code 1 — never a traceback, never a number
computed from something it must not depend on.

The hostile models are the bundled lenet-standard with one behaviour added, exported with
``torch.export`` (a dynamic batch dimension) and registered by a card in a temporary folder.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
import yaml
from cards_helpers import sha256_bytes
from sqlalchemy import create_engine, text
from torch import nn
from typer.testing import CliRunner

from invarbench.cards import resolve_card
from invarbench.cli.app import app
from invarbench.data import load_eval_data
from invarbench.models.loading import load_model

runner = CliRunner()
REFERENCE = "mnist5k/lenet-standard"


@pytest.fixture(scope="module")
def lenet() -> nn.Module:
    """The bundled lenet-standard, unwrapped (inputs in [0, 1]; its card has no normalisation)."""
    return load_model(resolve_card(REFERENCE), "cpu").wrapper.model


def _export(module: nn.Module, dtype: torch.dtype = torch.float32) -> bytes:
    example = torch.rand(2, 1, 28, 28).to(dtype)
    program = torch.export.export(module.eval(), (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def _card(root, name: str, pt2: bytes, **overrides) -> str:
    data = {
        "schema_version": 1,
        "id": f"mnist5k/{name}",
        "name": name,
        "dataset": "mnist5k",
        "num_classes": 10,
        "source": {"path": f"{name}.pt2", "sha256": sha256_bytes(pt2)},
        "format": "torch-export",
        "preprocessing": {"input_size": [1, 28, 28]},
        "training": {"method": "standard"},
        "license": "MIT",
        "submitted_by": "tests",
    }
    data.update(overrides)
    folder = root / "cards" / "mnist5k"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.pt2").write_bytes(pt2)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return data["id"]


def _eval(root, card_id: str, *args: str):
    return runner.invoke(
        app,
        [
            "eval",
            card_id,
            "--cards-dir",
            str(root / "cards"),
            "--suite",
            "quick",
            "--device",
            "cpu",
            "--db",
            f"sqlite:///{root / 'results.db'}",
            *args,
        ],
    )


def _one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _runs(root) -> list[dict]:
    engine = create_engine(f"sqlite:///{root / 'results.db'}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, status, error, flags, model_dtype FROM runs ORDER BY id")).mappings().all()
    return [dict(r) for r in rows]


def _metrics(root, run_id: int) -> dict[str, float]:
    engine = create_engine(f"sqlite:///{root / 'results.db'}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, value FROM metrics WHERE run_id = :r"), {"r": run_id}).all()
    return dict(rows)


def _flags(run: dict) -> list[str]:
    flags = run["flags"]
    return json.loads(flags) if isinstance(flags, str) else list(flags or [])


# --- 1. several NSPGD pairs refused in the same iteration ------------------------------------------
def test_pairs_refused_together_give_numbers_and_equal_pairs_give_equal_values(tmp_path):
    """8 copies of one test '0' and 8 copies of one test '1': every '0' walks toward the same '1' and
    is refused at the same iteration (this crashed with a shape mismatch)."""
    data = load_eval_data("mnist5k", limit=200)
    zero = int(np.flatnonzero(data.y.numpy() == 0)[0])
    one = int(np.flatnonzero(data.y.numpy() == 1)[0])
    images = np.rint(data.x[[zero] * 8 + [one] * 8].numpy() * 255).astype(np.uint8)
    labels = np.array([0] * 8 + [1] * 8)
    path = tmp_path / "twins.npz"
    np.savez(path, x=images, y=labels)
    db = f"sqlite:///{tmp_path / 'results.db'}"
    result = runner.invoke(
        app, ["eval", REFERENCE, "--suite", "quick", "--device", "cpu", "--db", db, "--data", f"npz:{path}"]
    )
    assert result.exit_code == 0, result.output
    engine = create_engine(db)
    with engine.connect() as conn:
        (payload,) = conn.execute(text("SELECT \"values\" FROM example_results WHERE measurement = 'nspgd'")).one()
    pairs = json.loads(payload) if isinstance(payload, str) else payload
    assert pairs["source_label"] == [0] * 8 + [1] * 8
    for group in (range(8), range(8, 16)):
        for key in ("remaining_l2", "closure", "accepted_steps", "p_source_final", "still_source"):
            got = [pairs[key][i] for i in group]
            assert all(v is not None for v in got) and len(set(got)) == 1, (key, got)
    # The '0's and the '1's walk toward each other: different distances, same start.
    assert pairs["initial_l2"][0] == pairs["initial_l2"][8]


# --- 2. outputs that depend on the rest of the batch -------------------------------------------------
class _BatchStatsBN(nn.Module):
    """lenet-standard after a BatchNorm on batch statistics (``track_running_stats=False``)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(1, track_running_stats=False, affine=False)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(0.5 + 0.1 * self.bn(x))


def test_batch_statistics_raise_batch_dependent_outputs(tmp_path, lenet):
    card = _card(tmp_path, "batchstats", _export(_BatchStatsBN(lenet)))
    result = _eval(tmp_path, card, "--limit", "8", "--batch-size", "4")
    assert result.exit_code == 0, result.output
    assert "batch_dependent_outputs" in result.stdout
    assert "batch_dependent_outputs" in _flags(_runs(tmp_path)[-1])
    # The reference model's outputs do not depend on the batch: no flag.
    plain = _eval(tmp_path, REFERENCE, "--limit", "8", "--batch-size", "4", "--cards-dir", "model_cards")
    assert plain.exit_code == 0, plain.output
    assert "batch_dependent_outputs" not in _flags(_runs(tmp_path)[-1])


# --- 3. NaN logits away from the clean images --------------------------------------------------------
class _NaNOffGrid(nn.Module):
    """Finite logits on images whose pixels are multiples of 1/255 (every clean test image) and on the
    load check's all-0.5 probe; NaN for every other input, such as a PGD iterate."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled = x * 255
        on_grid = ((scaled - torch.round(scaled)).abs() < 1e-3).flatten(1).all(dim=1) | (x == 0.5).flatten(1).all(1)
        logits = self.net(x)
        return torch.where(on_grid[:, None], logits, torch.full_like(logits, math.nan))


def test_nan_logits_under_attack_stop_the_run_with_one_line_naming_card_measurement_and_count(tmp_path, lenet):
    card = _card(tmp_path, "nan-off-grid", _export(_NaNOffGrid(lenet)))
    result = _eval(tmp_path, card, "--limit", "8")
    line = _one_line_error(result, "model card mnist5k/nan-off-grid", "NaN or Inf logits", "during pgd_linf")
    count = int(line.split("logits for ")[1].split(" ")[0])
    assert count >= 1
    (run,) = _runs(tmp_path)
    assert run["status"] == "failed" and "during pgd_linf" in run["error"]
    assert _metrics(tmp_path, run["id"]) == {}  # no number computed from NaN is stored


# --- 5. a card whose num_classes differs from its data set's -----------------------------------------
def test_eval_refuses_a_card_that_cards_validate_refuses(tmp_path):
    weights = (resolve_card(REFERENCE).path.parent / "lenet-standard.safetensors").read_bytes()
    data = yaml.safe_load(resolve_card(REFERENCE).path.read_text())
    data.update(id="mnist5k/twenty", num_classes=20)
    data["architecture"]["kwargs"]["num_classes"] = 20
    data["source"] = {"path": "twenty.safetensors", "sha256": sha256_bytes(weights)}
    folder = tmp_path / "cards" / "mnist5k"
    folder.mkdir(parents=True)
    (folder / "twenty.safetensors").write_bytes(weights)
    (folder / "twenty.yaml").write_text(yaml.safe_dump(data))
    validate = runner.invoke(app, ["cards", "validate", str(folder / "twenty.yaml")])
    evaluated = _eval(tmp_path, "mnist5k/twenty", "--limit", "4")
    expected = "num_classes is 20, but data set 'mnist5k' has 10 classes"
    assert validate.exit_code == 1 and expected in validate.output
    _one_line_error(evaluated, expected)
    assert not (tmp_path / "results.db").exists() or _runs(tmp_path) == []


# --- 6. half precision ------------------------------------------------------------------------------
class _BFloat16Logits(nn.Module):
    """Computes in float32 but returns bfloat16 logits (this crashed inside NSPGD)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).to(torch.bfloat16)


def test_bfloat16_logits_are_measured_in_float32(tmp_path, lenet):
    card = _card(tmp_path, "bf16-logits", _export(_BFloat16Logits(lenet)))
    result = _eval(tmp_path, card, "--limit", "24")
    assert result.exit_code == 0, result.output
    (run,) = _runs(tmp_path)
    assert run["status"] == "finished" and run["model_dtype"] == "float32"
    metrics = _metrics(tmp_path, run["id"])
    assert math.isfinite(metrics["median_min_l2_distance"]) and 0 <= metrics["nspgd_closure"] <= 1


def test_a_bfloat16_model_computes_in_its_dtype_and_the_run_records_it(tmp_path, lenet):
    import copy

    half = copy.deepcopy(lenet).to(torch.bfloat16)
    card = _card(tmp_path, "bf16", _export(half, torch.bfloat16))
    model = load_model(resolve_card(card, tmp_path / "cards"), "cpu").wrapper
    assert model.compute_dtype == torch.bfloat16
    x = load_eval_data("mnist5k", limit=8).x
    logits = model(x)
    assert logits.dtype == torch.float32
    assert torch.equal(logits, half(x.to(torch.bfloat16)).float())
    result = _eval(tmp_path, card, "--limit", "24")
    assert result.exit_code == 0, result.output
    (run,) = _runs(tmp_path)
    assert run["status"] == "finished" and run["model_dtype"] == "bfloat16"


# --- 7. zero input gradients -------------------------------------------------------------------------
class _FewGreyLevels(nn.Module):
    """lenet-standard on inputs rounded to 4 grey levels: its input gradient is exactly zero."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * 3) / 3)


def test_zero_gradients_survive_every_measurement_and_raise_the_flags(tmp_path, lenet):
    card = _card(tmp_path, "grey-levels", _export(_FewGreyLevels(lenet)))
    result = _eval(tmp_path, card, "--limit", "40", "--batch-size", "20")
    assert result.exit_code == 0, result.output
    (run,) = _runs(tmp_path)
    flags = _flags(run)
    assert "zero_gradients" in flags
    # FMN walks nowhere without a gradient; the boundary search still finds adversarial examples.
    assert "gradient_attack_weaker_than_search" in flags
    metrics = _metrics(tmp_path, run["id"])
    assert metrics["clean_accuracy"] > 0.5
    assert math.isfinite(metrics["median_min_l2_distance"]) and metrics["median_min_l2_distance"] > 0
    # The flags stay visible in a narrow terminal's run list.
    listed = runner.invoke(
        app, ["results", "list", "--db", f"sqlite:///{tmp_path / 'results.db'}"], env={"COLUMNS": "80"}
    )
    assert f"run {run['id']} flags: zero_gradients, gradient_attack_weaker_than_search" in listed.stdout


# --- a model whose own forward raises during the run ----------------------------------------------
class _RaisesOffGrid(nn.Module):
    """Runs on images whose pixels are multiples of 1/255 (every clean test image) and on the load
    check's all-0.5 probe, and raises on anything else (a PGD iterate), as a model with an input
    assertion does."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled = x * 255
        torch._assert_async(
            ((scaled - torch.round(scaled)).abs() < 1e-3).all() | (x == 0.5).all(), "input not on the 1/255 grid"
        )
        return self.net(x)


def test_a_forward_that_raises_under_attack_stops_the_run_in_one_line(tmp_path, lenet):
    card = _card(tmp_path, "raises-off-grid", _export(_RaisesOffGrid(lenet)))
    result = _eval(tmp_path, card, "--limit", "8")
    _one_line_error(
        result,
        "model card mnist5k/raises-off-grid",
        "the model's forward raised RuntimeError",
        "input not on the 1/255 grid",
        "during pgd_linf (examples 0-7)",
    )
    (run,) = _runs(tmp_path)
    assert run["status"] == "failed" and "during pgd_linf" in run["error"]


class _NaNEverywhere(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 10), math.nan) + 0 * x.flatten(1)[:, :10]


def test_cards_validate_load_refuses_nan_logits_on_the_probe(tmp_path):
    card = _card(tmp_path, "nan-everywhere", _export(_NaNEverywhere()))
    result = runner.invoke(
        app, ["cards", "validate", "--load", str(tmp_path / "cards" / "mnist5k" / "nan-everywhere.yaml")]
    )
    assert result.exit_code == 1
    assert "returns NaN or Inf logits for a batch of 2 mid-grey inputs" in result.stderr
    assert "Traceback" not in result.stderr and card


def test_cards_new_never_writes_a_card_that_validate_refuses(tmp_path):
    weights = tmp_path / "cards" / "mnist5k" / "nc20.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes((resolve_card(REFERENCE).path.parent / "lenet-standard.safetensors").read_bytes())
    result = runner.invoke(
        app,
        [
            "cards",
            "new",
            "--id",
            "mnist5k/nc20",
            "--name",
            "LeNet",
            "--num-classes",
            "20",
            "--input-size",
            "1,28,28",
            "--file",
            str(weights),
            "--architecture",
            "lenet",
            "--arch-kwargs",
            "{num_classes: 20}",
            "--training",
            "standard",
            "--license",
            "MIT",
            "--submitted-by",
            "tests",
            "--no-input",
            "--cards-dir",
            str(tmp_path / "cards"),
        ],
    )
    _one_line_error(result, "num_classes is 20, but data set 'mnist5k' has 10 classes")
    assert not (tmp_path / "cards" / "mnist5k" / "nc20.yaml").exists()
