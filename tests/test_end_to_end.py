"""The whole pipe on the bundled reference models: eval -> database -> results list -> site."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from invarbench.cli import app

runner = CliRunner()
LIMIT = 40


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Evaluate both reference models once (quick suite, first 40 test images) into one database."""
    root = tmp_path_factory.mktemp("e2e")
    db = f"sqlite:///{root / 'results.db'}"
    outputs = {}
    for model in ("mnist5k/lenet-standard", "mnist5k/lenet-pgd-at"):
        result = runner.invoke(
            app,
            [
                "eval",
                model,
                "--suite",
                "quick",
                "--limit",
                str(LIMIT),
                "--device",
                "cpu",
                "--batch-size",
                "16",
                "--db",
                db,
            ],
        )
        assert result.exit_code == 0, result.output
        outputs[model] = result.stdout
    return root, db, outputs


def _scores(db: str) -> dict[str, dict[str, float]]:
    engine = create_engine(db)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT m.card_id, x.name, x.value FROM metrics x JOIN runs r ON r.id = x.run_id "
                "JOIN models m ON m.id = r.model_id WHERE r.status = 'finished'"
            )
        ).all()
    scores: dict[str, dict[str, float]] = {}
    for card_id, name, value in rows:
        scores.setdefault(card_id, {})[name] = value
    return scores


def test_scores_are_stored_with_provenance(evaluated):
    _, db, _ = evaluated
    scores = _scores(db)
    assert set(scores) == {"mnist5k/lenet-standard", "mnist5k/lenet-pgd-at"}
    for metrics in scores.values():
        assert 0.8 <= metrics["clean_accuracy"] <= 1.0
        assert metrics["robust_accuracy_linf"] <= metrics["clean_accuracy"]
    # The adversarially trained model is far more robust at the same budget (eps = 0.3).
    assert scores["mnist5k/lenet-pgd-at"]["robust_accuracy_linf"] >= 0.5
    assert scores["mnist5k/lenet-standard"]["robust_accuracy_linf"] <= 0.1
    engine = create_engine(db)
    with engine.connect() as conn:
        run = conn.execute(
            text(
                "SELECT suite_name, suite_version, seed, batch_size, examples_effective, device, torch_version, "
                "invarbench_version, status FROM runs ORDER BY id LIMIT 1"
            )
        ).one()
        model = conn.execute(text("SELECT file_sha256, card_sha256, card_yaml FROM models ORDER BY id LIMIT 1")).one()
    assert run.suite_name == "quick" and run.suite_version >= 1
    assert (run.batch_size, run.examples_effective, run.device, run.status) == (16, LIMIT, "cpu", "finished")
    assert run.torch_version and run.invarbench_version
    assert re.fullmatch(r"[0-9a-f]{64}", model.file_sha256) and re.fullmatch(r"[0-9a-f]{64}", model.card_sha256)
    assert "mnist5k/lenet-standard" in model.card_yaml


def test_summary_table_shows_the_stored_numbers(evaluated):
    _, db, outputs = evaluated
    scores = _scores(db)
    for model, stdout in outputs.items():
        for name in ("clean_accuracy", "robust_accuracy_linf"):
            assert name in stdout
            assert f"{scores[model][name]:.4f}" in stdout


def test_results_list_shows_both_runs(evaluated):
    _, db, _ = evaluated
    result = runner.invoke(app, ["results", "list", "--db", db], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "mnist5k/lenet-standard" in result.stdout and "mnist5k/lenet-pgd-at" in result.stdout


def test_site_contains_the_scores(evaluated):
    root, db, _ = evaluated
    out = root / "site"
    result = runner.invoke(app, ["site", "build", "--out", str(out), "--db", db])
    assert result.exit_code == 0, result.output
    html = (out / "index.html").read_text()
    scores = _scores(db)
    for model, metrics in scores.items():
        assert f'data-model="{model}"' in html
        row = html[html.index(f'data-model="{model}"') :]
        row = row[: row.index("</tr>")]
        for name in ("clean_accuracy", "robust_accuracy_linf"):
            cell = row[row.index(f'data-metric="{name}"') :]
            assert f"{100 * metrics[name]:.2f}%" in cell[: cell.index("</td>")]
    # Ranked by robust accuracy: the adversarially trained model comes first.
    assert html.index('data-model="mnist5k/lenet-pgd-at"') < html.index('data-model="mnist5k/lenet-standard"')
