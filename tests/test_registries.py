"""Every extension point is a registry entry that owns its knowledge: contract tests over every registered
measurement, model format and data set, and a toy model format and a toy data set, each added as one module
here, that appear in runs, exports, the site and ``--help`` with no other edit (the toy measurement's twin
is tests/test_toy_measurement.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from invarbench.cards import resolve_card
from invarbench.cards.catalog import card_from_data
from invarbench.cards.formats import FORMATS, ModelFormat, format_for_file
from invarbench.cli.app import app
from invarbench.data import DATASETS
from invarbench.errors import ValidationError
from invarbench.evaluation import EvalOptions, evaluate
from invarbench.evaluation.distributed import batch_cost
from invarbench.measurements import MEASUREMENTS, metric_specs
from invarbench.measurements.base import suite_fields
from invarbench.registry import PluginRoute, Registry
from invarbench.site.protocol import method_docs
from invarbench.store import Store
from invarbench.suites import list_suites
from invarbench.suites import schema as suite_schema

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "model_cards" / "mnist5k" / "lenet-standard.yaml"


def _headings(page: str) -> set[str]:
    return set(re.findall(r"^#{1,6} (.+?)\s*$", (ROOT / "docs" / page).read_text(encoding="utf-8"), flags=re.M))


# --- measurements ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MEASUREMENTS.names())
def test_every_measurement_keeps_its_contract(name):
    m = MEASUREMENTS.get(name)
    order = [x.name for x in MEASUREMENTS.in_order()]
    assert m.name == name and m.description
    assert m.fields or (m.metrics and m.aggregate is not None)  # stores values, or reads the others' (ece)
    assert all(r in MEASUREMENTS and order.index(r) < order.index(name) for r in m.requires)
    if m.settings is not None:
        assert dataclasses.is_dataclass(m.settings) and suite_fields(m.settings) is not None
    assert (m.aggregate is None) == (not m.metrics)
    assert m.data_fields <= set(m.fields)
    for pattern in m.artifacts:
        re.compile(pattern)
    if m.docs is not None:
        page, heading = m.docs
        assert heading in _headings(page), f"docs/{page} has no heading {heading!r}"
    if m.figures is not None:
        assert m.figures({}, {}, {}) == []  # nothing measured, nothing drawn


def test_metric_names_and_artifact_names_belong_to_one_measurement_each():
    names = [s.name for s in metric_specs()]
    assert len(names) == len(set(names))
    from invarbench.measurements import owner_of_artifact
    from invarbench.measurements.human_invariance import PICTURE
    from invarbench.measurements.nspgd import strip_name

    assert owner_of_artifact(strip_name(12, "png")).name == "nspgd"
    assert owner_of_artifact(f"{PICTURE}.json").name == "human_invariance"
    assert owner_of_artifact("nspgd-strip-12.png") is None


@pytest.mark.parametrize("suite", list_suites(), ids=lambda s: s.key)
def test_a_batch_costs_the_clean_pass_plus_what_each_measurement_declares(suite):
    n = min(suite.num_examples, 50)
    declared = sum(
        m.cost(suite.measurements.get(m.name), suite, 0, n)
        for m in MEASUREMENTS.in_order()
        if m.cost is not None and suite.measurements.get(m.name) is not None
    )
    assert batch_cost(suite, 0, n) == n + declared and declared > 0
    # The PGD steps alone are a lower bound, per example.
    assert batch_cost(suite, 0, n) >= n * (1 + suite.measurements.pgd_linf.steps)
    assert "pgd_linf" in method_docs() and all(m.name in method_docs() for m in MEASUREMENTS.in_order() if m.docs)


# --- the plug-in route ------------------------------------------------------------------------------------


def test_a_registry_imports_its_plug_ins_once_on_first_read(tmp_path, monkeypatch):
    (tmp_path / "my_things.py").write_text("import registry_under_test as r\nr.THINGS.add('mine', 42)\n")
    (tmp_path / "registry_under_test.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    import registry_under_test

    things: Registry[int] = Registry("thing", PluginRoute("INVARBENCH_TEST_THINGS", "invarbench.test-things"))
    registry_under_test.THINGS = things
    monkeypatch.setenv("INVARBENCH_TEST_THINGS", "my_things")
    try:
        assert "mine" in things and things.get("mine") == 42 and things.names() == ["mine"]
        monkeypatch.setenv("INVARBENCH_TEST_THINGS", "no_such_module")
        assert things.names() == ["mine"]  # once
        with pytest.raises(ValidationError, match=r"cannot load the thing module no_such_module .*INVARBENCH_TEST"):
            things.load_plugins(again=True)
    finally:
        sys.modules.pop("my_things", None)
        sys.modules.pop("registry_under_test", None)


# --- model formats ----------------------------------------------------------------------------------------


def _card_data(**changes) -> dict:
    data = yaml.safe_load(LENET.read_text())
    data.update(changes)
    return data


@pytest.mark.parametrize("name", FORMATS.names())
def test_every_model_format_keeps_its_contract(name):
    fmt = FORMATS.get(name)
    assert fmt.name == name and fmt.description and callable(fmt.load)
    assert format_for_file(f"model{fmt.suffix.upper()}") is fmt
    data = _card_data(format=name, source={"path": f"model{fmt.suffix}", "sha256": "0" * 64})
    if not fmt.needs_architecture:
        data.pop("architecture")
    assert card_from_data(data, LENET).format == name
    # The other half of the architecture rule.
    other = dict(data)
    if fmt.needs_architecture:
        other.pop("architecture")
    else:
        other["architecture"] = {"name": "lenet", "kwargs": {}}
    with pytest.raises(ValidationError, match=f"format '{name}'"):
        card_from_data(other, LENET)
    with pytest.raises(ValidationError, match=rf"format '{name}' needs a '{re.escape(fmt.suffix)}' file"):
        card_from_data({**data, "source": {"path": "model.weights", "sha256": "0" * 64}}, LENET)


def test_no_two_formats_share_a_suffix_and_an_unknown_format_lists_the_registered_ones():
    suffixes = [f.suffix for f in FORMATS.in_order()]
    assert len(suffixes) == len(set(suffixes)) and {"safetensors", "torch-export"} <= set(FORMATS.names())
    with pytest.raises(ValidationError, match="unknown model format 'safetensor'. Did you mean 'safetensors'") as err:
        card_from_data(_card_data(format="safetensor"), LENET)
    assert all(name in str(err.value) for name in FORMATS.names())
    with pytest.raises(ValueError, match="suffix must be lower case"):
        ModelFormat("x", "raw", True, "", lambda p, r: None)


# A whole model format: raw little-endian float32 weights in the architecture's state-dict order.
TOY_FORMAT = """
import numpy as np
import torch

from invarbench.cards.formats import ModelFormat, register_format
from invarbench.errors import ValidationError
from invarbench.models.architectures import build_architecture


def load(path, ref):
    arch = ref.card.architecture
    module = build_architecture(arch.name, **arch.kwargs)
    flat = np.fromfile(path, dtype="<f4")
    state, at = {}, 0
    for key, value in module.state_dict().items():
        if not value.is_floating_point():
            state[key] = value
            continue
        n = value.numel()
        if at + n > flat.size:
            raise ValidationError(f"model card {ref.path}: {path.name} holds too few weights")
        state[key] = torch.from_numpy(flat[at : at + n].copy()).reshape(value.shape)
        at += n
    if at != flat.size:
        raise ValidationError(f"model card {ref.path}: {path.name} holds {flat.size - at} weights too many")
    module.load_state_dict(state)
    return module


register_format(ModelFormat(name="toy-raw", suffix=".raw", needs_architecture=True,
                            description="raw float32 weights in state-dict order", load=load))
"""


def _import(tmp_path: Path, name: str, text: str):
    (tmp_path / f"{name}.py").write_text(text)
    spec = importlib.util.spec_from_file_location(name, tmp_path / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def toy_format(tmp_path):
    yield _import(tmp_path, "toy_format", TOY_FORMAT)
    FORMATS.remove("toy-raw")


def _write_raw_card(folder: Path, data: dict) -> Path:
    """The LeNet's weights as a .raw file, and its card in format toy-raw, in ``folder/<dataset>/``."""
    import torch
    from safetensors.torch import load_file

    from invarbench.models.architectures import build_architecture

    arch = data["architecture"]
    order = build_architecture(arch["name"], **arch["kwargs"]).state_dict()
    weights = load_file(str(LENET.with_suffix(".safetensors")))
    raw = b"".join(weights[k].to(torch.float32).numpy().astype("<f4").tobytes() for k in order)
    card_dir = folder / data["dataset"]
    card_dir.mkdir(parents=True)
    (card_dir / "lenet-raw.raw").write_bytes(raw)
    data = {
        **data,
        "id": f"{data['dataset']}/lenet-raw",
        "name": "LeNet (raw weights)",
        "format": "toy-raw",
        "source": {"path": "lenet-raw.raw", "sha256": hashlib.sha256(raw).hexdigest()},
    }
    (card_dir / "lenet-raw.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return card_dir / "lenet-raw.yaml"


TOY_SUITE = """
name: toy
version: 1
dataset: {dataset}
description: clean accuracy and calibration
changelog: ["1: first"]
num_examples: 12
checks: {{examples: 4}}
measurements:
  ece: {{bins: 5}}
"""


@pytest.fixture
def toy_suite(tmp_path, monkeypatch):
    suites = tmp_path / "suites"
    (suites / "toy").mkdir(parents=True)
    monkeypatch.setattr(suite_schema, "_root", lambda: suites)

    def write(dataset: str) -> None:
        (suites / "toy" / f"{dataset}.yaml").write_text(TOY_SUITE.format(dataset=dataset))

    return write


def _run_export_and_site(tmp_path: Path, ref, card_id: str, name: str) -> list:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    outcome = evaluate(ref, Store(url), EvalOptions(suite="toy", device="cpu", batch_size=5))
    runner = CliRunner()
    exported = runner.invoke(app, ["results", "export", "--db", url])
    assert exported.exit_code == 0, exported.output
    (doc,) = json.loads(exported.stdout)
    assert card_id in json.dumps(doc) and {m["name"] for m in doc["metrics"]} >= {"clean_accuracy", "ece"}
    site = tmp_path / "site"
    built = runner.invoke(app, ["site", "build", "--out", str(site), "--db", url])
    assert built.exit_code == 0, built.output
    assert name in (site / "index.html").read_text()
    return outcome.metrics


def test_a_toy_model_format_appears_in_cards_runs_exports_the_site_and_the_help(toy_format, toy_suite, tmp_path):
    toy_suite("mnist5k")
    card = _write_raw_card(tmp_path / "cards", yaml.safe_load(LENET.read_text()))
    ref = resolve_card(str(card))
    assert ref.card.format == "toy-raw" and format_for_file("w.RAW").name == "toy-raw"
    metrics = _run_export_and_site(tmp_path, ref, "mnist5k/lenet-raw", "LeNet (raw weights)")
    # The same weights in another format: the same numbers, bit for bit.
    again = evaluate(
        resolve_card("mnist5k/lenet-standard"), Store("sqlite://"), EvalOptions(suite="toy", device="cpu", batch_size=5)
    )
    assert [(m.name, m.value, m.ci_low, m.ci_high) for m in metrics] == [
        (m.name, m.value, m.ci_low, m.ci_high) for m in again.metrics
    ]
    shown = CliRunner().invoke(app, ["cards", "new", "--help"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0 and "toy-raw (.raw)" in shown.stdout and ".raw" in shown.stdout
    # cards new picks the format from the suffix.
    out = CliRunner().invoke(
        app,
        [
            "cards",
            "new",
            "--id",
            "mnist5k/lenet-raw",
            "--name",
            "x",
            "--num-classes",
            "10",
            "--input-size",
            "1,28,28",
            "--file",
            str(card.parent / "lenet-raw.raw"),
            "--architecture",
            "lenet",
            "--license",
            "MIT",
            "--submitted-by",
            "me",
            "--out",
            "-",
            "--no-input",
            "--cards-dir",
            str(tmp_path / "cards"),
        ],
    )
    assert out.exit_code == 0, out.output
    assert "format: toy-raw" in out.stdout


# --- data sets --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_data_set_keeps_its_contract(name):
    spec = DATASETS.get(name)
    assert spec.name == name and spec.num_classes > 1 and callable(spec.loader)
    assert len(spec.input_shape) == 3 and all(d > 0 for d in spec.input_shape)
    assert re.search(r"[\d,]+ test\b", spec.description), "the site reads the test split's size from it"


def test_every_packaged_suite_is_for_a_registered_data_set():
    assert {s.dataset for s in list_suites()} <= set(DATASETS.names())


# A whole data set: the first 40 mnist5k test images, upside down.
TOY_DATASET = """
from invarbench.data.mnist5k import load as load_mnist5k
from invarbench.data.registry import DatasetSpec, register_dataset


def load(split, data_dir=None):
    images, labels = load_mnist5k(split, data_dir)
    return images[:40, :, ::-1, :].copy(), labels[:40].copy()


register_dataset(DatasetSpec(name="flipped-digits", num_classes=10, input_shape=(1, 28, 28),
                             description="40 mnist5k digits upside down; 40 test", loader=load))
"""


@pytest.fixture
def toy_dataset(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "flipped_digits.py").write_text(TOY_DATASET)
    monkeypatch.setenv("INVARBENCH_DATASETS", "flipped_digits")
    monkeypatch.setattr(DATASETS, "_loaded", False)  # the plug-in route, as a fresh process takes it
    yield
    DATASETS.remove("flipped-digits")
    sys.modules.pop("flipped_digits", None)


def test_a_toy_data_set_appears_in_cards_runs_exports_the_site_and_the_help(toy_dataset, toy_suite, tmp_path):
    assert "flipped-digits" in DATASETS  # imported from $INVARBENCH_DATASETS on the first read
    toy_suite("flipped-digits")
    folder = tmp_path / "cards" / "flipped-digits"
    folder.mkdir(parents=True)
    shutil.copy(LENET.with_suffix(".safetensors"), folder / "lenet.safetensors")
    data = yaml.safe_load(LENET.read_text())
    data.update(id="flipped-digits/lenet", dataset="flipped-digits", name="LeNet on flipped digits")
    data["source"]["path"] = "lenet.safetensors"
    (folder / "lenet.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    ref = resolve_card(str(folder / "lenet.yaml"))
    checked = CliRunner().invoke(app, ["cards", "validate", str(folder / "lenet.yaml")])
    assert checked.exit_code == 0, checked.output
    metrics = _run_export_and_site(tmp_path, ref, "flipped-digits/lenet", "LeNet on flipped digits")
    assert metrics[0].name == "clean_accuracy" and metrics[0].n == 12
    shown = CliRunner().invoke(app, ["suites", "show", "--help"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0 and "flipped-digits" in shown.stdout


def test_the_docs_list_the_registered_formats():
    from invarbench.cards.formats import formats_table

    assert formats_table() in (ROOT / "docs" / "model-cards.md").read_text(encoding="utf-8")
