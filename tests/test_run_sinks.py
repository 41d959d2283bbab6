"""Plan, execute, sink: options checked once with errors that the command line says with its flags,
the Python API without ``db`` recording nothing, and one way of writing a metric's interval."""

from __future__ import annotations

import ast
import math
import sqlite3
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console
from torch import nn
from typer.main import get_command
from typer.testing import CliRunner

import invarbench
from invarbench.api import EvaluationResult
from invarbench.cards import resolve_card
from invarbench.cli import app
from invarbench.cli.eval import OPTION_FLAGS, outcome_markdown, render_outcome
from invarbench.cli.results import _ci
from invarbench.errors import OptionError
from invarbench.evaluation import EvalOptions, EvalOutcome, evaluate
from invarbench.evaluation.sinks import NullSink, RankZeroSink, StoreSink, sink_for
from invarbench.metrics.stats import MetricValue, format_interval, format_number
from invarbench.models.loading import load_model
from invarbench.store import Store

MODEL = "mnist5k/lenet-standard"
ROOT = Path(invarbench.__file__).resolve().parent


@pytest.fixture(scope="module")
def lenet() -> nn.Module:
    return load_model(resolve_card(MODEL), "cpu").wrapper.model


def test_the_python_api_without_db_opens_no_database(lenet, tmp_path, monkeypatch):
    """No Store is made, no SQLite connection is opened, and no file is written (the temporary
    folder and the working directory stay empty), while the numbers are those of a stored run."""
    opened: list[object] = []
    real_connect = sqlite3.connect

    def no_store(self, *args, **kwargs):
        opened.append(("Store", args))
        raise AssertionError("the Python API without db made a Store")

    def counted_connect(*args, **kwargs):
        opened.append(("sqlite3.connect", args))
        return real_connect(*args, **kwargs)

    scratch, cwd = tmp_path / "tmp", tmp_path / "cwd"
    scratch.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(cwd)
    with monkeypatch.context() as mp:
        mp.setattr(Store, "__init__", no_store)
        mp.setattr(sqlite3, "connect", counted_connect)
        result = invarbench.evaluate_model(lenet, device="cpu", limit=8, batch_size=4)
    assert opened == [] and result.run_id is None
    assert list(scratch.rglob("*")) == [] and list(cwd.rglob("*")) == []

    stored = invarbench.evaluate_model(lenet, device="cpu", limit=8, batch_size=4, db=f"sqlite:///{tmp_path / 'r.db'}")
    assert stored.run_id is not None
    assert list(result.metrics.values()) == list(stored.metrics.values()) and result.flags == stored.flags


def test_each_run_gets_the_sink_its_store_and_rank_call_for():
    store = Store("sqlite://")
    assert isinstance(sink_for(None, None), NullSink)
    assert isinstance(sink_for(store, None), StoreSink)
    rank0 = SimpleNamespace(main=True)
    other = SimpleNamespace(main=False)
    assert isinstance(sink_for(store, rank0), RankZeroSink) and isinstance(sink_for(store, rank0).inner, StoreSink)
    assert isinstance(sink_for(None, other).inner, NullSink)  # only rank 0 writes: the others pass no store
    with pytest.raises(ValueError, match="rank 0 of a distributed run needs the store"):
        sink_for(None, rank0)


def _failing_compile(monkeypatch):
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(torch, "compile", lambda net: Broken())


# (command-line arguments, the same as EvalOptions, the option the error names, set-up)
CASES = {
    "batch size below 1": (["--batch-size", "0"], {"batch_size": 0}, "batch_size", None),
    "batch size not a number": (["--batch-size", "big"], {"batch_size": "big"}, "batch_size", None),
    "unknown device": (["--device", "tpu"], {"device": "tpu"}, "device", None),
    "cuda without a GPU": (
        ["--device", "cuda"],
        {"device": "cuda"},
        "device",
        lambda mp: mp.setattr(torch.cuda, "is_available", lambda: False),
    ),
    "unknown precision": (["--precision", "fp8"], {"precision": "fp8"}, "precision", None),
    "compile fails": (["--compile"], {"compile": True}, "compile", _failing_compile),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_option_error_names_the_cli_flag_there_and_the_option_in_python(case, monkeypatch, tmp_path):
    args, options, option, setup = CASES[case]
    if setup is not None:
        setup(monkeypatch)
    flag = OPTION_FLAGS[option]
    common = {"suite": "quick", "limit": 8, "device": "cpu"}
    with pytest.raises(OptionError) as raised:
        evaluate(resolve_card(MODEL), None, EvalOptions(**{**common, **options}))
    error = raised.value
    assert error.option == option and option in str(error) and flag not in str(error)

    db = f"sqlite:///{tmp_path / 'r.db'}"
    cli = ["eval", MODEL, "--suite", "quick", "--limit", "8", "--device", "cpu", "--db", db, *args]
    result = CliRunner().invoke(app, cli)
    assert result.exit_code == 1, result.output
    assert result.stderr == f"Error: {error.naming(flag)}\n"
    assert flag in result.stderr


def test_every_option_error_names_an_option_the_command_line_has():
    """Each ``OptionError("name", ...)`` in the package names a key of OPTION_FLAGS, and each flag
    there is an option of 'invarbench eval'."""
    named = set()
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "OptionError":
                first = node.args[0]
                assert isinstance(first, ast.Constant), f"{path}:{node.lineno}: name the option as a literal"
                named.add(first.value)
    assert {"batch_size", "limit", "device", "precision", "compile"} <= named <= set(OPTION_FLAGS)
    eval_cmd = get_command(app).commands["eval"]
    flags = {opt for p in eval_cmd.params for opt in p.opts}
    assert set(OPTION_FLAGS.values()) <= flags


def test_an_interval_is_written_the_same_everywhere_nan_included():
    nan = MetricValue("robust_accuracy_linf", math.nan, math.nan, math.nan, math.nan, 0)
    some = MetricValue("clean_accuracy", 0.5, 0.1, 0.25, 0.75, 4)
    none = MetricValue("median_l2", 0.125, None, None, None, 1)
    assert (format_interval(math.nan, math.nan), format_number(math.nan), format_number(None)) == (
        "[NaN, NaN]",
        "NaN",
        "–",
    )
    assert (format_interval(0.25, 0.75), format_interval(None, None)) == ("[0.2500, 0.7500]", "–")
    suite = SimpleNamespace(name="quick", version=5, key="quick/mnist5k")
    outcome = EvalOutcome(
        run_id=1,
        card_id=MODEL,
        suite=suite,
        metrics=[nan, some, none],
        flags=[],
        examples=4,
        duration_s=1.0,
        device="cpu",
    )
    console = Console(record=True, width=200)
    console.print(render_outcome(outcome))
    table = console.export_text()
    markdown = outcome_markdown(outcome)
    api = str(EvaluationResult({m.name: m for m in outcome.metrics}, [], {}, {"examples_effective": 4}, suite, None))
    for m in outcome.metrics:
        interval = format_interval(m.ci_low, m.ci_high)
        assert _ci(m) == interval
        assert f"| {format_number(m.value)} | {interval} |" in markdown
        assert f"{format_number(m.value)}  {interval}" in api
        row = next(line for line in table.splitlines() if m.name in line)
        assert interval in row and format_number(m.value) in row
    assert "nan" not in table + markdown + api
