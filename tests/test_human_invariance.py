"""human_invariance: the 350 human-labelled invariance examples of Tramèr et al. (ICML 2020).

Ground truth: the upstream files' sha256 (and, where ``/work/shared/external`` holds them, the files
themselves and the MNIST test split they were made from), the paper's human-study rates, and models
built to copy the human labels or the original ones.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import class_mean_model
from PIL import Image
from torch import nn

from invarbench.data import load_eval_data
from invarbench.data.native import read_idx
from invarbench.data.registry import EvalData
from invarbench.errors import ValidationError
from invarbench.evaluation.measure import measure_batch
from invarbench.evaluation.pipeline import finish_suite, run_suite
from invarbench.measurements import MEASUREMENTS, aggregate
from invarbench.measurements.human_invariance import (
    DATA_DIR,
    PICTURE,
    SETS,
    UPSTREAM_SHA256,
    breakdown,
    load_probe_set,
)
from invarbench.measurements.human_invariance import (
    HUMAN_INVARIANCE as HUMAN,
)
from invarbench.models.wrapper import ModelWrapper
from invarbench.suites import load_suite
from invarbench.suites.schema import Suite

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "external"  # ../shared/external beside the checkout
UPSTREAM_DIR = EXTERNAL / "invariance-examples"
MNIST_DIR = EXTERNAL / "mnist"
# The human study's rates (Tramèr et al., ICML 2020; the upstream Demo notebook prints the same):
# the share of each set whose label humans changed.
PAPER_RATES = {"linf-0.3": 0.21, "linf-0.4": 0.37, "linf-0.4-manual": 0.88, "l0": 0.55}
SIZES = {"linf-0.3": 100, "linf-0.4": 100, "linf-0.4-manual": 50, "l0": 100}
BUDGETS = {"linf-0.3": 0.3, "linf-0.4": 0.4, "linf-0.4-manual": 0.4}


def make_suite(**settings) -> Suite:
    return Suite.model_validate(
        {
            "name": "test",
            "version": 1,
            "dataset": "mnist5k",
            "description": "unit test",
            "changelog": ["1: x"],
            "num_examples": 12,
            "seed": 0,
            "checks": {"examples": 4},
            "measurements": {"human_invariance": settings},
        }
    )


class Lookup(nn.Module):
    """Predicts, for each image that is exactly one of the probe images, the label ``labels`` gives it
    (logit 10 for that class, 0 elsewhere), and class 0 for any other image."""

    def __init__(self, x: torch.Tensor, labels: np.ndarray) -> None:
        super().__init__()
        self.table = {img.numpy().tobytes(): int(c) for img, c in zip(x, labels)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        classes = [self.table.get(img.detach().cpu().numpy().tobytes(), 0) for img in x]
        return 10.0 * nn.functional.one_hot(torch.tensor(classes), 10).float()


@pytest.fixture(scope="module")
def data():
    return load_eval_data("mnist5k", limit=12)


@pytest.fixture(scope="module")
def model():
    train = load_eval_data("mnist5k", split="train", limit=1000)
    return ModelWrapper(class_mean_model(train.x, train.y, scale=4.0), num_classes=10, input_shape=(1, 28, 28))


def run_probe(model: nn.Module, data: EvalData, suite: Suite) -> tuple[dict, dict, list]:
    values, artifacts = measure_batch(model, data, 0, len(data), suite, torch.Generator().manual_seed(0))
    return values, artifacts, aggregate(values, suite)


# --- the data ------------------------------------------------------------------------------------


def test_the_shipped_files_are_the_upstreams_byte_for_byte():
    for name, digest in UPSTREAM_SHA256.items():
        assert hashlib.sha256((DATA_DIR / name).read_bytes()).hexdigest() == digest, name
    assert (DATA_DIR / "LICENSE").read_text().startswith("MIT License")
    if not UPSTREAM_DIR.is_dir():
        pytest.skip(f"{UPSTREAM_DIR} is absent: the recorded digests are checked against the shipped files only")
    for name, digest in UPSTREAM_SHA256.items():
        assert hashlib.sha256((UPSTREAM_DIR / name).read_bytes()).hexdigest() == digest, name
    assert (DATA_DIR / "LICENSE").read_bytes() == (UPSTREAM_DIR / "LICENSE").read_bytes()


def test_the_loader_refuses_a_file_that_is_not_the_upstreams(tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(DATA_DIR, copy)
    target = copy / "linf" / "automated_eps03_labels.npy"
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 1  # one human label changed
    target.write_bytes(bytes(raw))
    with pytest.raises(
        ValidationError, match=r"automated_eps03_labels\.npy has sha256 [0-9a-f]{64}, not the upstream's"
    ):
        load_probe_set(copy)
    target.unlink()
    with pytest.raises(ValidationError, match="cannot read the human-invariance file"):
        load_probe_set(copy)
    assert load_probe_set(DATA_DIR).x.shape == (350, 1, 28, 28)  # the shipped folder loads


def test_the_images_are_the_published_values_divided_by_255():
    probe = load_probe_set()
    assert probe.x.dtype == torch.float32 and probe.x.shape == (350, 1, 28, 28)
    assert probe.sets == tuple(s for s in SETS for _ in range(SIZES[s]))
    start = 0
    for name, files in SETS.items():
        published = np.load(DATA_DIR / files.images, allow_pickle=False)
        n = SIZES[name]
        expected = torch.from_numpy(published.astype(np.float32)) / 255.0
        assert torch.equal(probe.x[start : start + n, 0], expected), name
        assert probe.items[start : start + n] == tuple(range(n))
        start += n
    eps03 = probe.x[:100].double() * 255
    assert (eps03 != eps03.round()).any(), "the ε = 0.3 set has fractional values: never rounded to uint8"


def test_the_sets_are_relabelled_at_the_papers_human_study_rates():
    probe = load_probe_set()
    sets = np.asarray(probe.sets)
    for name, rate in PAPER_RATES.items():
        rows = sets == name
        assert rows.sum() == SIZES[name]
        assert probe.relabelled[rows].sum() == round(rate * SIZES[name]), name
    assert probe.relabelled.sum() == 157 and (~probe.relabelled).sum() == 193


def test_the_original_labels_are_derived_again_from_the_mnist_test_files():
    if not MNIST_DIR.is_dir():
        pytest.skip(f"{MNIST_DIR} is absent")
    script = DATA_DIR / "derive_original_labels.py"
    spec = importlib.util.spec_from_file_location("derive_original_labels", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = module.derive(MNIST_DIR)
    assert module.text(doc) == (DATA_DIR / "original_labels.json").read_text()
    # The indices line up with the IDX order: each L∞ image lies within its budget of the MNIST test
    # image its index names (another image would be a different digit, far outside it).
    images = read_idx(next(MNIST_DIR.glob("t10k-images-idx3-ubyte*"))).astype(np.float32) / 255.0
    probe = load_probe_set()
    sets = np.asarray(probe.sets)
    for name, eps in BUDGETS.items():
        rows = np.flatnonzero(sets == name)
        gap = np.abs(probe.x[rows, 0].numpy() - images[probe.mnist_index[rows]]).max(axis=(1, 2))
        # within ε up to the rounding of the uint8 sets to whole 255ths (0.4 * 255 = 102 -> 103 / 255)
        assert gap.max() <= eps + 1 / 255 + 1e-6, name
        assert gap.max() >= eps - 1e-6, name  # the attack used its budget


# --- the measurement -----------------------------------------------------------------------------


def test_a_model_that_copies_the_human_labels_scores_1_and_one_that_copies_the_originals_0(data):
    probe = load_probe_set()
    suite = make_suite()
    values, artifacts, metrics = run_probe(Lookup(probe.x, probe.human), data, suite)
    by_name = {m.name: m for m in metrics}
    assert by_name["human_agreement_relabelled"].value == 1.0 and by_name["human_agreement_relabelled"].n == 157
    assert by_name["human_agreement_unchanged"].value == 1.0 and by_name["human_agreement_unchanged"].n == 193
    assert by_name["human_agreement_relabelled"].ci_high == 1.0 and by_name["human_agreement_relabelled"].ci_low < 1
    assert not artifacts  # no disagreement, no picture

    values, artifacts, metrics = run_probe(Lookup(probe.x, probe.original), data, suite)
    by_name = {m.name: m for m in metrics}
    assert by_name["human_agreement_relabelled"].value == 0.0 and by_name["human_agreement_relabelled"].ci_low == 0.0
    assert by_name["human_agreement_unchanged"].value == 1.0  # the same label there
    rows = breakdown(values["human_invariance"])
    assert [b.set for b in rows] == [*SETS, "all"]
    for b in rows[:-1]:
        assert (b.n, b.relabelled) == (SIZES[b.set], round(PAPER_RATES[b.set] * SIZES[b.set]))
        assert b.relabelled_agree == 0 and b.relabelled_original == b.relabelled and b.unchanged_agree == b.unchanged
    assert (rows[-1].n, rows[-1].relabelled, rows[-1].relabelled_original) == (350, 157, 157)

    doc = json.loads(artifacts[f"{PICTURE}.json"])
    assert len(doc["panels"]) == 157
    relabelled = np.flatnonzero(probe.relabelled)
    for panel, i in zip(doc["panels"], relabelled):
        assert (panel["set"], panel["item"]) == (probe.sets[i], probe.items[i])
        assert (panel["original_label"], panel["human_label"], panel["predicted"]) == (
            probe.original[i],
            probe.human[i],
            probe.original[i],
        )
    png = np.asarray(Image.open(io.BytesIO(artifacts[f"{PICTURE}.png"])))
    assert png.shape == (doc["height"], doc["width"])
    size = doc["panel_size"]
    for panel, i in list(zip(doc["panels"], relabelled))[::25]:
        cell = png[panel["top"] : panel["top"] + size, panel["left"] : panel["left"] + size]
        scale = size // 28
        expected = (probe.x[i, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        assert np.array_equal(cell[::scale, ::scale], expected)


def test_a_model_that_fails_on_every_perturbed_digit_does_not_look_good(data):
    probe = load_probe_set()
    wrong = (probe.human + 1) % 10  # never the human's label, never the original where they agree
    _, _, metrics = run_probe(Lookup(probe.x, wrong), data, make_suite())
    by_name = {m.name: m.value for m in metrics}
    assert by_name == {
        "clean_accuracy": by_name["clean_accuracy"],
        "human_agreement_relabelled": 0.0,
        "human_agreement_unchanged": 0.0,
    }


def test_the_fields_are_the_models_predictions_on_the_probe_images(model, data):
    probe = load_probe_set()
    values, artifacts, _ = run_probe(model, data, make_suite())
    fields = values["human_invariance"]
    with torch.no_grad():
        probs = torch.softmax(model(probe.x).double(), dim=1)
    assert fields["pred"] == probs.argmax(dim=1).tolist()
    assert fields["confidence"] == probs.max(dim=1).values.tolist()
    assert fields["p_human"] == probs[torch.arange(350), torch.as_tensor(probe.human)].tolist()
    assert fields["set"] == list(probe.sets) and fields["mnist_index"] == probe.mnist_index.tolist()
    assert fields["relabelled"] == probe.relabelled.tolist()
    disagree = sum(p != h for p, h in zip(fields["pred"], fields["human_label"]))
    assert 0 < disagree < 350 and len(json.loads(artifacts[f"{PICTURE}.json"])["panels"]) == disagree


def test_a_subset_of_sets_measures_those_images_only(data):
    probe = load_probe_set()
    values, _, metrics = run_probe(Lookup(probe.x, probe.original), data, make_suite(sets=["l0", "linf-0.3"]))
    assert set(values["human_invariance"]["set"]) == {"linf-0.3", "l0"}
    assert {m.name: m.n for m in metrics}["human_agreement_relabelled"] == 21 + 55
    with pytest.raises(Exception, match="human_invariance sets must be distinct names"):
        make_suite(sets=["linf-0.5"])


def test_deterministic_and_independent_of_the_batches(model, data):
    suite = make_suite()
    runs = {}
    for batch_size in (5, 12, 3):
        batches = list(run_suite(model, data, suite, seed=0, batch_size=batch_size, device=torch.device("cpu")))
        assert "human_invariance" in batches[0].values
        assert all("human_invariance" not in b.values and not b.artifacts for b in batches[1:])
        result = finish_suite((b.values for b in batches), suite, [])
        runs[batch_size] = (result.per_example["human_invariance"], result.metrics, dict(batches[0].artifacts))
    again = list(run_suite(model, data, suite, seed=0, batch_size=5, device=torch.device("cpu")))
    assert again[0].values["human_invariance"] == runs[5][0] and dict(again[0].artifacts) == runs[5][2]
    assert runs[5] == runs[12] == runs[3]


def test_a_model_of_other_images_is_refused(data):
    other = EvalData("cifar10", "test", torch.rand(4, 3, 32, 32), torch.zeros(4, dtype=torch.long), 4)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    with pytest.raises(ValidationError, match=r"probes MNIST digits \(1x28x28\), the evaluated images are 3x32x32"):
        run_probe(net, other, make_suite())


def test_the_mnist_family_suites_measure_it():
    for name in ("standard", "quick"):
        for dataset in ("mnist", "mnist5k"):
            suite = load_suite(name, dataset)
            assert suite.measurements.human_invariance.sets == tuple(SETS), suite.key
        assert load_suite(name, "cifar10").measurements.get("human_invariance") is None
    assert load_suite("standard", "mnist").num_examples == 1000  # the first 1,000 test images
    assert MEASUREMENTS.get("human_invariance").per == "probe"


PROBE_SUITE = """
name: probe
version: 1
dataset: mnist5k
description: clean accuracy and human-judged invariance
changelog: ["1: first"]
num_examples: 12
checks: {examples: 4}
measurements:
  human_invariance: {}
"""


def test_the_run_the_export_and_the_model_page_carry_it(tmp_path):
    from typer.testing import CliRunner

    from invarbench.cards import resolve_card
    from invarbench.cli.app import app
    from invarbench.evaluation import EvalOptions, evaluate
    from invarbench.store import Store

    suite_file = tmp_path / "probe.yaml"
    suite_file.write_text(PROBE_SUITE)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store(url)
    outcome = evaluate(
        resolve_card("mnist5k/lenet-standard"), store, EvalOptions(suite=str(suite_file), device="cpu", batch_size=5)
    )
    assert [m.name for m in outcome.metrics] == ["clean_accuracy", *(s.name for s in HUMAN.metrics)]
    values = outcome.per_example["human_invariance"]
    assert len(values["pred"]) == 350
    run = store.get_run(outcome.run_id)
    stored = {a.name: a.data for a in run.artifacts}
    doc = json.loads(stored[f"{PICTURE}.json"])
    disagree = [i for i, (p, h) in enumerate(zip(values["pred"], values["human_label"])) if p != h]
    assert [(d["set"], d["item"]) for d in doc["panels"]] == [(values["set"][i], values["item"][i]) for i in disagree]

    exported = tmp_path / "exported"
    result = CliRunner().invoke(app, ["results", "export", "--out", str(exported), "--db", url])
    assert result.exit_code == 0, result.output
    again = f"sqlite:///{tmp_path / 'again.db'}"
    result = CliRunner().invoke(app, ["results", "import", str(exported), "--db", again])
    assert result.exit_code == 0, result.output  # the import recomputes the metrics from the values
    (copy,) = Store(again).list_runs()
    assert {a.name: a.data for a in Store(again).get_run(copy.id).artifacts} == stored

    site = tmp_path / "site"
    built = CliRunner().invoke(app, ["site", "build", "--out", str(site), "--db", url])
    assert built.exit_code == 0, built.output
    assert "Human agreement (relabelled)" in (site / "index.html").read_text()  # a column of the board
    (page,) = site.glob("models/*/lenet-standard.html")
    html = page.read_text()
    assert "Invariance judged by humans" in html
    pooled = breakdown(values)[-1]
    assert f"{pooled.relabelled_agree} of 157" in html and f"{pooled.unchanged_agree} of 193" in html
    assert html.count('class="disagreements"') == 1 and html.count(f"{PICTURE}.png") == len(disagree)
    assert (page.parent / page.stem / f"{PICTURE}.png").read_bytes() == stored[f"{PICTURE}.png"]
