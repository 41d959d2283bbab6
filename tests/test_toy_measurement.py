"""A new measurement is one module and one suite entry: it then appears in the run, the exports, the
distributed schedule's costs, the site (its column, its figure on the model page) and ``--help`` with no
other edit (everything reads measurements, metrics, costs and figures from the registry)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
from typer.testing import CliRunner

from invarbench.cards import resolve_card
from invarbench.cli.app import app
from invarbench.evaluation import EvalOptions, evaluate
from invarbench.evaluation.distributed import batch_cost
from invarbench.measurements import MEASUREMENTS
from invarbench.store import Store
from invarbench.suites import schema as suite_schema

# The whole of a toy measurement: the mean top-class confidence, with a setting.
TOY_MODULE = """
from dataclasses import dataclass

import torch

from invarbench.measurements import MEASUREMENTS, BatchOutput, FigureData, Measurement, MetricSpec
from invarbench.metrics.stats import mean_metric

SPEC = MetricSpec(name="mean_top_confidence", label="Mean top confidence", unit="probability", better=None,
                  percent=False, aggregation="mean", interval="bootstrap percentile", reads="describes the model",
                  description="the mean of the largest softmax probability, raised to a power")


@dataclass(frozen=True)
class Settings:
    power: float = 1.0
    __pydantic_config__ = {"extra": "forbid"}


def measure(ctx, cfg):
    p = torch.softmax(ctx.logits.double(), dim=1).max(dim=1).values ** cfg.power
    return BatchOutput({"top": p.tolist()})


def aggregate(per_example, cfg, suite):
    return [mean_metric(SPEC.name, torch.tensor(per_example["toy"]["top"], dtype=torch.float64))]


def figures(values, settings, metrics):
    caption = f"the top-class confidences to the power {settings['power']}"
    return [FigureData("Toy top confidences", "distance_histogram", {"distances": values["toy"]["top"]}, caption)]


MEASUREMENTS.add("toy", Measurement(name="toy", description="a toy", settings=Settings, measure=measure,
                                    fields={"top": "the top-class confidence to the power"}, metrics=(SPEC,),
                                    aggregate=aggregate, figures=figures,
                                    cost=lambda cfg, suite, start, stop: (stop - start) * cfg.power))
"""

TOY_SUITE = """
name: toy
version: 1
dataset: mnist5k
description: clean accuracy and a toy measurement
changelog: ["1: first"]
num_examples: 12
checks: {examples: 4}
measurements:
  toy: {power: 2}
"""


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_measurement.py").write_text(TOY_MODULE)
    spec = importlib.util.spec_from_file_location("toy_measurement", tmp_path / "toy_measurement.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    suites = tmp_path / "suites"
    (suites / "toy").mkdir(parents=True)
    (suites / "toy" / "mnist5k.yaml").write_text(TOY_SUITE)
    monkeypatch.setattr(suite_schema, "_root", lambda: suites)
    yield module
    MEASUREMENTS.remove("toy")
    sys.modules.pop("toy_measurement", None)


def test_a_toy_measurement_appears_in_the_run_the_exports_and_the_site(toy, tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    outcome = evaluate(
        resolve_card("mnist5k/lenet-standard"), Store(url), EvalOptions(suite="toy", device="cpu", batch_size=5)
    )
    names = [m.name for m in outcome.metrics]
    assert names == ["clean_accuracy", "mean_top_confidence"]
    tops = outcome.per_example["toy"]["top"]
    conf = outcome.per_example["clean"]["confidence"]
    assert len(tops) == 12 and tops == [c**2 for c in conf]  # the setting reached the measurement
    toy_metric = outcome.metrics[1]
    assert toy_metric.value == pytest.approx(sum(tops) / 12)

    runner = CliRunner()
    exported = runner.invoke(app, ["results", "export", "--db", url])
    assert exported.exit_code == 0, exported.output
    (doc,) = json.loads(exported.stdout)
    assert {m["name"] for m in doc["metrics"]} == set(names)
    assert any(b["measurement"] == "toy" and "top" in b["values"] for b in doc["examples"])
    csv = runner.invoke(app, ["results", "export", "--format", "csv", "--db", url])
    assert "mean_top_confidence" in csv.stdout

    site = tmp_path / "site"
    built = runner.invoke(app, ["site", "build", "--out", str(site), "--db", url])
    assert built.exit_code == 0, built.output
    html = (site / "index.html").read_text()
    assert "Mean top confidence" in html and 'data-metric="mean_top_confidence"' in html
    (page,) = (site / "models").rglob("lenet-standard.html")
    assert "Toy top confidences" in page.read_text() and "the top-class confidences to the power 2" in page.read_text()

    suite = suite_schema.load_suite("toy", "mnist5k")
    assert batch_cost(suite, 0, 12) == 12 + 12 * 2  # the clean pass and the toy's declared cost
    shown = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0 and "toy" in shown.stdout.split("measurements are among")[1]


def test_a_toy_suite_entry_is_validated_against_the_toy_settings(toy):
    suites = suite_schema._root()
    (suites / "toy" / "mnist5k.yaml").write_text(TOY_SUITE.replace("power: 2", "powr: 2"))
    with pytest.raises(Exception, match="measurements.toy.powr: unknown setting"):
        suite_schema.load_suite("toy", "mnist5k")


def test_a_suite_file_of_ones_own_includes_a_packaged_suite(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text(
        "name: mine\nversion: 1\ndataset: mnist5k\ndescription: quick with more PGD steps\n"
        'changelog: ["1: first"]\ninclude: quick/mnist5k\nmeasurements: {pgd_linf: {steps: 12}, path_width: null}\n'
    )
    suite = suite_schema.load_suite(str(own), "mnist5k")
    quick = suite_schema.load_suite("quick", "mnist5k")
    assert suite.name == "mine" and suite.measurements.pgd_linf.steps == 12 and suite.measurements.path_width is None
    assert suite.measurements.min_norm == quick.measurements.min_norm and suite.num_examples == quick.num_examples
    with pytest.raises(Exception, match="is for data set 'mnist5k', the model's is 'cifar10'"):
        suite_schema.load_suite(str(own), "cifar10")
    with pytest.raises(Exception, match="suite file not found"):
        suite_schema.load_suite(str(tmp_path / "nope.yaml"), "mnist5k")


def test_a_suite_file_may_not_take_a_packaged_suites_name(tmp_path):
    fake = tmp_path / "fake.yaml"
    fake.write_text(
        "name: quick\nversion: 3\ndataset: mnist5k\ndescription: not the quick suite\n"
        'changelog: ["3: x"]\ninclude: quick/mnist5k\nmeasurements: {pgd_linf: {eps: 0.001}}\n'
    )
    with pytest.raises(Exception, match="is named 'quick', like a packaged suite: give it a name of its own"):
        suite_schema.load_suite(str(fake), "mnist5k")


def test_a_measurement_that_returns_the_wrong_number_of_values_is_refused(toy):
    from dataclasses import replace

    from invarbench.measurements import BatchOutput

    m = MEASUREMENTS.remove("toy")
    MEASUREMENTS.add("toy", replace(m, measure=lambda ctx, cfg: BatchOutput({"top": [0.5] * 3})))
    with pytest.raises(RuntimeError, match=r"measurement toy returned fields of the wrong length \{'top': 3\}"):
        evaluate(resolve_card("mnist5k/lenet-standard"), Store("sqlite://"), EvalOptions(suite="toy", device="cpu"))


def test_the_command_line_loads_a_measurement_of_ones_own_from_the_environment(tmp_path, monkeypatch):
    """$INVARBENCH_MEASUREMENTS names the module; a suite file of one's own uses it; 'invarbench eval' runs it."""
    (tmp_path / "my_toy.py").write_text(TOY_MODULE)
    own = tmp_path / "mine.yaml"
    own.write_text(TOY_SUITE.replace("name: toy", "name: mine"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("INVARBENCH_MEASUREMENTS", "my_toy")
    monkeypatch.setattr(MEASUREMENTS, "_loaded", False)
    try:
        url = f"sqlite:///{tmp_path / 'r.db'}"
        result = CliRunner().invoke(
            app, ["eval", "mnist5k/lenet-standard", "--suite", str(own), "--device", "cpu", "--db", url]
        )
        assert result.exit_code == 0, result.output
        assert "mean_top_confidence" in result.stdout
    finally:
        if "toy" in MEASUREMENTS:
            MEASUREMENTS.remove("toy")
        sys.modules.pop("my_toy", None)
    monkeypatch.setenv("INVARBENCH_MEASUREMENTS", "no_such_module")
    monkeypatch.setattr(MEASUREMENTS, "_loaded", False)
    bad = CliRunner().invoke(app, ["eval", "mnist5k/lenet-standard", "--suite", str(own), "--device", "cpu"])
    assert bad.exit_code == 1 and "cannot load the measurement module no_such_module" in bad.stderr
