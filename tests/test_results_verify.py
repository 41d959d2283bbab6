"""``invarbench results verify``: re-running a results file's batches reproduces its per-example values.

A run made here (the quick suite on a few mnist5k images, exported as a results file) reproduces bit for bit on
the machine that made it; one edited per-example value, or a forgery whose metrics and digest were made to
match, is a MISMATCH naming the batch, the example and the field; a file whose card or suite is not the
registered one is refused with one line. The comparison rules are tested on values made up for them, and the
published files under leaderboard/results/ reproduce within the cross-device tolerance (slow: one batch each).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import REAL_CIFAR10_NPZ, REAL_MNIST, write_cifar_batch
from tf32_helpers import record_tf32, tf32_allowed, tf32_flags
from typer.testing import CliRunner

from invarbench.cards import resolve_card
from invarbench.cli import app
from invarbench.evaluation import EvalOptions, evaluate
from invarbench.evaluation.verify import (
    CROSS_DEVICE,
    EXACT,
    Comparison,
    Tolerance,
    batch_order,
    compare_batch,
    read_document,
    same_device_class,
    same_kernels,
    select_batches,
)
from invarbench.measurements import aggregate
from invarbench.store import Store
from invarbench.store.codec import decode_floats, encode_floats, encode_number
from invarbench.store.documents import content_digest, dumps
from invarbench.store.export import picked_runs
from invarbench.store.results_files import write_json_tree
from invarbench.suites import load_suite

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "leaderboard" / "results"
PUBLISHED = sorted(p for p in RESULTS.rglob("*.json") if ".artifacts" not in p.parent.name)


def _cheapest_per_board(paths: list[Path]) -> list[Path]:
    """Per board (data set, suite, version), the published CPU file whose run took the least time: verifying a
    first batch costs about a quarter of the run, so one file per board keeps the test to minutes while
    every board's files are still checked against the model here (the rest by the published-results tests)."""
    best: dict[tuple, tuple[float, Path]] = {}
    for path in paths:
        run = json.loads(path.read_text())["run"]
        key = (run["dataset"], run["suite_name"], run["suite_version"])
        # This test re-runs on the CPU: a GPU run's wall time says nothing of its cost here (ResNet-56: 57 s on
        # an H100, hours on two CPU cores).
        cost = (run.get("duration_s") or float("inf")) if run.get("device") == "cpu" else float("inf")
        if key not in best or cost < best[key][0]:
            best[key] = (cost, path)
    return sorted(p for _, p in best.values())


CARD = "mnist5k/lenet-standard"
EXAMPLES, BATCH = 6, 3  # two batches of the quick suite: a few seconds each on a CPU


# --- a run made here, exported -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def made_here(tmp_path_factory) -> Path:
    """A smoke run of the quick suite (two batches), evaluated on this CPU and exported as a results file."""
    tmp = tmp_path_factory.mktemp("verify")
    store = Store(f"sqlite:///{tmp / 'runs.db'}")
    options = EvalOptions(suite="quick", limit=EXAMPLES, batch_size=BATCH, device="cpu")
    outcome = evaluate(resolve_card(CARD, None), store, options)
    (file,) = write_json_tree(picked_runs(store, [outcome.run_id]), tmp / "results")
    return file


def _copy(file: Path, to: Path) -> Path:
    """The results file and its artifacts folder, copied into ``to``."""
    to.mkdir(parents=True, exist_ok=True)
    shutil.copy(file, to / file.name)
    artifacts = file.with_name(file.stem + ".artifacts")
    if artifacts.is_dir():
        shutil.copytree(artifacts, to / artifacts.name)
    return to / file.name


def _rewrite(file: Path, doc: dict) -> None:
    """Write ``doc`` back with its ``content_sha256`` recomputed as the export computes it: the digest then
    says nothing about the edit, as after a forger's."""
    doc["content_sha256"] = content_digest(doc)
    file.write_text(dumps(doc), encoding="utf-8")


def _block(doc: dict, measurement: str, start: int) -> dict:
    (block,) = [e for e in doc["examples"] if e["measurement"] == measurement and e["batch_start"] == start]
    return block


def test_a_run_reproduces_exactly_on_the_machine_that_made_it(made_here):
    result = runner.invoke(app, ["results", "verify", str(made_here), "--batches", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"OK {made_here}: 1 batch (examples 0..{BATCH - 1}) reproduce exactly"


def test_verify_recomputes_in_ieee_float32_as_the_run_did(made_here, monkeypatch):
    """A run computes with TF32 off (evaluation.speed.reproducible_float32); so does its recomputation, whatever the
    process allowed before, which is restored after it."""
    with tf32_allowed():
        seen = record_tf32(monkeypatch)
        result = runner.invoke(app, ["results", "verify", str(made_here), "--batches", "1", "--device", "cpu"])
        assert result.exit_code == 0, result.output
        assert tf32_flags() == (True, True)
    assert seen == {"forward": {(False, False)}, "backward": {(False, False)}}


def test_an_edited_per_example_value_is_a_mismatch_naming_the_field(made_here, tmp_path):
    file = _copy(made_here, tmp_path)
    doc = json.loads(file.read_text())
    block = _block(doc, "pgd_linf", 0)["values"]
    # The step at which PGD broke an example: no metric reads it, so the results door cannot tell.
    i = next(i for i, (by, at) in enumerate(zip(block["broken_by"], block["broken_at"])) if by == "pgd" and at >= 0)
    stored = block["broken_at"][i] + 1
    block["broken_at"][i] = stored
    _rewrite(file, doc)
    read_document(file)  # the door passes it: only re-running the batch catches the edit

    result = runner.invoke(app, ["results", "verify", str(file), "--batches", "1", "--device", "cpu"])
    assert result.exit_code == 1
    # Made on this machine: its clean pass reproduces bit for bit, so the comparison is exact (no tolerance).
    assert result.stdout.strip() == (
        f"MISMATCH {file}: batch 0, example {i}, field pgd_linf.broken_at: stored {stored}, recomputed {stored - 1}"
    )


def test_a_forged_robust_accuracy_with_matching_metrics_is_a_mismatch(made_here, tmp_path):
    """A forger flips examples to robust and recomputes the metrics and the digest: the door passes the file, and
    verify names the first flipped example."""
    file = _copy(made_here, tmp_path)
    doc = json.loads(file.read_text())
    block = _block(doc, "pgd_linf", 0)["values"]
    flipped = [i for i, by in enumerate(block["broken_by"]) if by not in (None, "clean")]
    assert flipped, "the reference LeNet is broken by PGD L-inf on most images"
    for i in flipped:
        block["robust"][i], block["broken_by"][i] = True, None
    per_example: dict[str, dict[str, list]] = {}
    for e in sorted(doc["examples"], key=lambda e: e["batch_start"]):
        for key, vals in decode_floats(e["values"]).items():
            per_example.setdefault(e["measurement"], {}).setdefault(key, []).extend(vals)
    suite = load_suite("quick", "mnist5k")
    again = {m.name: m for m in aggregate(per_example, suite)}
    before = next(m["value"] for m in doc["metrics"] if m["name"] == "robust_accuracy_linf")
    for m in doc["metrics"]:
        new = again[m["name"]]
        m.update(value=encode_number(new.value), stderr=encode_number(new.stderr), ci_low=encode_number(new.ci_low))
        m.update(ci_high=encode_number(new.ci_high), n=new.n)
    assert next(m["value"] for m in doc["metrics"] if m["name"] == "robust_accuracy_linf") > before
    _rewrite(file, doc)
    read_document(file)

    result = runner.invoke(app, ["results", "verify", str(file), "--batches", "1", "--device", "cpu"])
    assert result.exit_code == 1
    assert result.stdout.strip() == (
        f"MISMATCH {file}: batch 0, example {flipped[0]}, field pgd_linf.robust: stored True, recomputed False"
    )


def test_a_card_that_is_not_the_one_the_run_used_is_refused_with_one_line(made_here, tmp_path):
    cards = tmp_path / "cards"
    shutil.copytree(ROOT / "model_cards" / "mnist5k", cards / "mnist5k")
    card = cards / "mnist5k" / "lenet-standard.yaml"
    card.write_text(card.read_text() + "# edited after the run\n")
    result = runner.invoke(
        app, ["results", "verify", str(made_here), "--batches", "1", "--device", "cpu", "--cards-dir", str(cards)]
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {made_here}: the registered card {CARD} ")
    assert "sha256" in line and "re-evaluate" in line and "Traceback" not in result.output

    empty = tmp_path / "no-cards"
    empty.mkdir()
    result = runner.invoke(app, ["results", "verify", str(made_here), "--device", "cpu", "--cards-dir", str(empty)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"Error: {made_here}: model card {CARD} is not registered (no {empty / 'mnist5k' / 'lenet-standard.yaml'}): "
        "verify re-runs the registered card's model; add the card, or pass --cards-dir"
    ]


def test_a_run_of_other_suite_settings_is_refused_with_one_line(made_here, tmp_path):
    """Settings that are not the registered suite's (a smaller NSPGD step here), their hash and the file's
    digest recomputed: nothing is re-run with settings the suite does not have."""
    file = _copy(made_here, tmp_path)
    doc = json.loads(file.read_text())
    settings = decode_floats(doc["run"]["suite_settings"])
    settings["measurements"]["nspgd"]["eta"] /= 2
    doc["run"]["suite_settings"] = encode_floats(settings)
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    doc["run"]["suite_settings_hash"] = hashlib.sha256(text.encode()).hexdigest()
    _rewrite(file, doc)
    result = runner.invoke(app, ["results", "verify", str(file), "--device", "cpu"])
    assert result.exit_code == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {file}: run.suite_settings_hash ") and "registered quick v" in line


def test_every_file_gets_its_line_and_any_failure_exits_1(made_here, tmp_path):
    missing = tmp_path / "nowhere.json"
    result = runner.invoke(app, ["results", "verify", str(missing), "--batches", "1", "--device", "cpu"])
    assert result.exit_code == 1 and result.stderr.strip() == f"Error: {missing} does not exist (or is not a file)"
    bad = runner.invoke(app, ["results", "verify", str(made_here), "--batches", "0"])
    assert bad.exit_code == 1 and bad.stderr.strip() == "Error: --batches must be at least 1, got 0"


# --- the rules, on values made up for them ----------------------------------------------------------
def test_a_clean_pass_equal_to_the_last_bit_means_the_same_kernels():
    stored = {"clean": {"confidence": [0.5, 0.25, 0.125], "pred": [1, 2, 3]}}
    assert same_kernels(stored, {"clean": {"confidence": [0.5, 0.25, 0.125], "pred": [1, 2, 3]}})
    assert not same_kernels(stored, {"clean": {"confidence": [0.5, 0.25, math.nextafter(0.125, 1)]}})
    assert not same_kernels(stored, {"clean": {"confidence": [0.5, 0.25]}})
    assert not same_kernels({"pgd_linf": {}}, {"pgd_linf": {}})  # no clean pass: nothing tells


def test_the_first_batch_comes_first_then_an_order_drawn_from_the_seed():
    starts = list(range(0, 5000, 250))
    order = batch_order(starts, seed=0)
    assert order[0] == 0 and sorted(order) == starts
    assert batch_order(reversed(starts), seed=0) == order  # the order of the input does not matter
    assert batch_order(starts, seed=1)[1:] != order[1:]  # another seed, another sample
    assert batch_order(starts, seed=1)[0] == 0
    grid = {s: s + 250 for s in starts}
    assert select_batches(grid, 0, 3) == sorted((s, s + 250) for s in order[:3])
    assert select_batches(grid, 0, 99) == sorted(grid.items())  # K above the number of batches: all of them


def _compare(stored, recomputed, tolerance: Tolerance) -> Comparison:
    return compare_batch(stored, recomputed, batch=2, start=500, tolerance=tolerance, into=Comparison())


def test_exact_comparison_accepts_no_difference_and_names_the_value():
    stored = {"min_norm": {"distance": [0.5, 1.25, math.nan], "method": ["fmn", "fmn", "fmn"]}}
    same = json.loads(json.dumps(encode_floats(stored)))
    assert _compare(stored, decode_floats(same), EXACT).exact
    off = {"min_norm": {"distance": [0.5, math.nextafter(1.25, 2), math.nan], "method": ["fmn", "fmn", "fmn"]}}
    found = _compare(stored, off, EXACT).mismatch
    assert (
        found.line()
        == f"batch 2, example 501, field min_norm.distance: stored 1.25, recomputed {off['min_norm']['distance'][1]!r}"
    )
    # A boolean is not the number 1, nor -0.0 the number 0.0.
    assert _compare({"m": {"x": [True]}}, {"m": {"x": [1]}}, CROSS_DEVICE).mismatch is not None
    assert _compare({"m": {"x": [0.0]}}, {"m": {"x": [-0.0]}}, EXACT).mismatch is not None


def test_the_cross_device_tolerance_per_kind_of_field():
    n = 100
    closure = [0.5 + i / 1000 for i in range(n)]
    stored = {
        "clean": {"label": [i % 10 for i in range(n)], "confidence": [0.9] * n},
        "nspgd": {"pair": list(range(n)), "closure": closure, "still_source": [True] * n},
        "pgd_linf": {"broken_at": [5] * n},
    }

    def changed(measurement: str, field: str, values: list) -> dict:
        out = json.loads(json.dumps(stored))
        out[measurement][field] = values
        return out

    assert _compare(stored, changed("nspgd", "closure", list(closure)), CROSS_DEVICE).exact
    # Search results: rows may differ; the batch's median and signed median relative differences may not.
    noisy = [v * (1 + (0.3 if i % 4 == 0 else 5e-4 * (-1) ** i)) for i, v in enumerate(closure)]
    c = _compare(stored, changed("nspgd", "closure", noisy), CROSS_DEVICE)
    assert c.mismatch is None and not c.exact and c.values_differing == n and c.values_beyond == 25
    assert c.largest_at == "nspgd.closure" and c.largest_relative == pytest.approx(0.3 / 1.3)
    shifted = [v * 1.002 for v in closure]  # every value 0.2 % higher: not noise
    found = _compare(stored, changed("nspgd", "closure", shifted), CROSS_DEVICE).mismatch
    assert (found.what, found.index, found.field) == ("pair", 0, "nspgd.closure")
    assert "its signed median -2.0e-03; the tolerance for a search's results is 1e-02 and 1e-03" in found.line()
    # Outcomes may flip on 2 % of the rows (a trajectory near a threshold), not on 3 %.
    assert Tolerance.budget(CROSS_DEVICE.outcome_fraction, n) == 2
    flips = [i >= 2 for i in range(n)]
    assert _compare(stored, changed("nspgd", "still_source", flips), CROSS_DEVICE).mismatch is None
    flips[2] = False
    found = _compare(stored, changed("nspgd", "still_source", flips), CROSS_DEVICE).mismatch
    assert (found.what, found.index, found.field, found.stored, found.recomputed) == (
        "pair",
        0,
        "nspgd.still_source",
        True,
        False,
    )
    assert "3 of 100 pairs differ in nspgd.still_source in this batch" in found.line()
    assert "(outcome: at most 2)" in found.line()
    # Single-pass floats: within rtol, or off on 2 % of the rows.
    near = [0.9 * (1 + 0.9 * CROSS_DEVICE.rtol)] * n
    assert _compare(stored, changed("clean", "confidence", near), CROSS_DEVICE).mismatch is None
    off = [0.99 if i < 3 else 0.9 for i in range(n)]
    found = _compare(stored, changed("clean", "confidence", off), CROSS_DEVICE).mismatch
    assert (found.index, found.field) == (500, "clean.confidence") and "(value: at most 2)" in found.line()
    # Step counts: 10 %.
    steps = [6 if i < 10 else 5 for i in range(n)]
    assert _compare(stored, changed("pgd_linf", "broken_at", steps), CROSS_DEVICE).mismatch is None
    steps[10] = 6
    assert (
        "(step: at most 10)" in _compare(stored, changed("pgd_linf", "broken_at", steps), CROSS_DEVICE).mismatch.line()
    )
    # The pair plan and the labels come from the data and the seed: equal on every device, no budget.
    other = list(range(n))
    other[3] = 4
    found = _compare(stored, changed("nspgd", "pair", other), CROSS_DEVICE).mismatch
    assert found.field == "nspgd.pair" and "equal on every device" in found.line()


def test_only_a_recorded_gpu_of_the_same_model_torch_and_dtype_is_the_same_device_class():
    import torch

    gpu = "cuda:NVIDIA H100 80GB HBM3"
    assert same_device_class(gpu, torch.__version__, "float32", gpu, "float32")
    assert not same_device_class(gpu, "2.0.0", "float32", gpu, "float32")
    assert not same_device_class(gpu, torch.__version__, "bfloat16 (autocast)", gpu, "float32")
    assert not same_device_class(f"{gpu} · torch.compile", torch.__version__, "float32", gpu, "float32")
    assert not same_device_class("cpu", torch.__version__, "float32", "cpu", "float32")


# --- the published files --------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("path", _cheapest_per_board(PUBLISHED), ids=lambda p: p.relative_to(RESULTS).as_posix())
def test_a_published_file_reproduces(path, tmp_path):
    """One batch (the first: it holds every NSPGD pair and path width) of each board's cheapest published file,
    on this CPU. The MNIST files need the MNIST test files (``../shared/external/mnist``); the CIFAR-10 files
    read a prefix copy of the official test batch written from the first 1,000 test images
    (``../shared/external/cifar10/test_first1000.npz``), which has the split's data digest. Each skips
    without its files."""
    doc = json.loads(path.read_text())
    dataset = doc["run"]["dataset"]
    data_args = []
    if dataset == "mnist" and REAL_MNIST.is_dir():
        data_args = ["--data-dir", str(REAL_MNIST)]
    elif dataset == "cifar10" and REAL_CIFAR10_NPZ.is_file():
        with np.load(REAL_CIFAR10_NPZ) as npz:  # x: [1000, 32, 32, 3] uint8 (NHWC), y: [1000]
            images, labels = npz["x"].transpose(0, 3, 1, 2), npz["y"]
        write_cifar_batch(tmp_path / "cifar-10-batches-py" / "test_batch", images, labels)
        data_args = ["--data-dir", str(tmp_path)]
    elif dataset != "mnist5k":  # mnist5k ships with the package; the others need their test files
        pytest.skip(f"needs the {dataset} test files")
    suite = load_suite(doc["run"]["suite_name"], doc["run"]["dataset"])
    if suite.version != doc["run"]["suite_version"]:
        pytest.skip(f"made with {suite.name} v{doc['run']['suite_version']}; the suite is now v{suite.version}")
    result = runner.invoke(app, ["results", "verify", str(path), "--batches", "1", "--device", "cpu", *data_args])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"OK {path}: 1 batch (examples 0..249) reproduce")


def test_a_run_on_an_npz_copy_of_the_split_is_verified_and_other_custom_data_is_refused(made_here, tmp_path):
    """An .npz copy of the test split's first images gives the split's data digest, so its full runs are
    ranked and verify re-runs them on the data set's own files; other custom data is refused with one line."""
    from types import SimpleNamespace

    from invarbench.data.digests import expected_digest
    from invarbench.evaluation.verify import ranked_kind
    from invarbench.leaderboard_policy import CUSTOM_DATA, FULL

    copy = SimpleNamespace(
        dataset="cifar10",
        data_source="npz:/data/test_first1000.npz sha256:" + "a" * 64,
        data_digest=expected_digest("cifar10", 1000),
        examples_effective=1000,
        suite_num_examples=1000,
    )
    assert ranked_kind(copy) == FULL
    assert ranked_kind(SimpleNamespace(**{**vars(copy), "data_digest": "v1:" + "0" * 64})) == CUSTOM_DATA
    assert ranked_kind(SimpleNamespace(**{**vars(copy), "examples_effective": 999})) == CUSTOM_DATA

    file = _copy(made_here, tmp_path / "custom")
    doc = json.loads(file.read_text())
    doc["run"]["data_source"] = "npz:/data/mine.npz sha256:" + "b" * 64  # a smoke run on custom data
    _rewrite(file, doc)
    result = runner.invoke(app, ["results", "verify", str(file), "--device", "cpu"])
    assert result.exit_code == 1
    assert "the run evaluated custom data (npz:/data/mine.npz)" in result.stderr


def test_verify_also_tries_one_thread_and_the_default_and_restores_the_number():
    """A CPU batch that is not exact is re-run with the other usual numbers of threads (the provenance does not
    record the run's): 1 and one per core, never the current number; the number is restored afterwards."""
    import os

    from invarbench.evaluation.verify import other_thread_counts, torch_threads

    now = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        assert other_thread_counts() == ([os.cpu_count()] if (os.cpu_count() or 1) > 1 else [])
    assert torch.get_num_threads() == now
    with torch_threads(2):
        assert other_thread_counts() == [1] + ([os.cpu_count()] if os.cpu_count() not in (1, 2) else [])
    assert torch.get_num_threads() == now
