"""The data digest: the full split and a prefix copy give the same digest for a suite's examples, whatever
the file format; a run on a prefix copy is ranked, a run on other images is not; the digest travels in
the results document (format version 4), and older documents without it still import."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from data_helpers import (
    REAL_CIFAR10_NPZ,
    REAL_MNIST,
    needs_real_cifar10,
    needs_real_mnist,
    synthetic_images,
    write_cifar_batch,
    write_idx,
)
from typer.testing import CliRunner

from invarbench.cli import app
from invarbench.data import load_eval_data
from invarbench.data import mnist5k as mnist5k_data
from invarbench.data.digests import EXPECTED_DIGESTS, examples_digest, expected_digest
from invarbench.data.native import read_idx
from invarbench.errors import ValidationError
from invarbench.leaderboard_policy import CUSTOM_DATA, FULL, SMOKE, run_kind
from invarbench.store import Store
from invarbench.suites import list_suites

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
# The sha256 of ../shared/external/cifar10/test_first1000.npz, as its README states it.
CIFAR10_NPZ_SHA256 = "9d4d72ca0523256c03abeb4cf4fc900f746cfbade2e33391f9c1d4a3ed186b9f"
# Data sets for which no copy of the test file was at hand, so no expected digest is recorded.
NO_DIGEST = {"cifar100"}


def _by_definition(images_nchw: np.ndarray, labels: np.ndarray) -> str:
    """The digest computed afresh from docs/datasets.md's definition, without invarbench's code."""
    n, c, h, w = images_nchw.shape
    payload = b"invarbench examples v1\n" + f"{n} {c} {h} {w}\n".encode("ascii")
    payload += bytes(images_nchw.astype(np.uint8).reshape(-1).tolist())
    payload += b"".join(int(v).to_bytes(8, "little", signed=True) for v in labels)
    return "v1:" + hashlib.sha256(payload).hexdigest()


def _labels(n: int, seed: int = 1, classes: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, size=n).astype(np.int64)


# --- the definition ----------------------------------------------------------------------------
def test_the_digest_is_the_documented_sha256_of_images_and_labels_in_order():
    images, labels = synthetic_images(7, (3, 4, 5)), _labels(7)
    digest = examples_digest(images, labels)
    assert re.fullmatch(r"v1:[0-9a-f]{64}", digest)
    assert digest == _by_definition(images, labels)
    # the label dtype does not matter, only the values; order, a pixel and a label do
    assert examples_digest(images, labels.astype(np.uint8)) == digest
    assert examples_digest(images[[1, 0, *range(2, 7)]], labels[[1, 0, *range(2, 7)]]) != digest
    brighter = images.copy()
    brighter[3, 2, 1, 0] ^= 1
    assert examples_digest(brighter, labels) != digest
    relabelled = labels.copy()
    relabelled[6] = (relabelled[6] + 1) % 10
    assert examples_digest(images, relabelled) != digest
    assert examples_digest(images[:6], labels[:6]) != digest
    # the same bytes under another image size are other examples
    assert examples_digest(images.reshape(7, 3, 5, 4), labels) != digest
    with pytest.raises(ValidationError, match="uint8 NCHW"):
        examples_digest(images.astype(np.float32), labels)
    with pytest.raises(ValidationError, match="one integer label per image"):
        examples_digest(images, labels[:5])


# --- full files and prefix copies (synthetic: always runs) --------------------------------------
def test_mnist_full_files_and_a_prefix_copy_give_the_same_digest(tmp_path):
    images, labels = synthetic_images(30, (28, 28)), _labels(30).astype(np.uint8)
    full, prefix = tmp_path / "full", tmp_path / "prefix"
    write_idx(full / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz", images)
    write_idx(full / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz", labels)
    write_idx(prefix / "t10k-images-idx3-ubyte", images[:20])  # uncompressed, directly in the folder
    write_idx(prefix / "t10k-labels-idx1-ubyte", labels[:20])
    a = load_eval_data("mnist", data_dir=full, limit=20)
    b = load_eval_data("mnist", data_dir=prefix, limit=20)
    assert (a.total, b.total) == (30, 20)
    assert a.digest == b.digest == _by_definition(images[:20, None], labels[:20])
    assert load_eval_data("mnist", data_dir=full, limit=21).digest != a.digest


def test_cifar_full_batch_a_prefix_batch_and_an_npz_give_the_same_digest(tmp_path):
    images, labels = synthetic_images(30, (3, 32, 32)), _labels(30)
    full, prefix = tmp_path / "full", tmp_path / "prefix"
    write_cifar_batch(full / "cifar-10-batches-py" / "test_batch", images, labels)  # as the official file
    write_cifar_batch(prefix / "cifar-10-batches-py" / "test_batch", images[:20], labels[:20], python2=False)
    npz = tmp_path / "first20.npz"
    np.savez(npz, x=images[:20].transpose(0, 2, 3, 1), y=labels[:20].astype(np.int32))  # NHWC, other dtype
    a = load_eval_data("cifar10", data_dir=full, limit=20)
    b = load_eval_data("cifar10", data_dir=prefix, limit=20)
    c = load_eval_data("cifar10", custom=f"npz:{npz}", limit=20)
    assert a.digest == b.digest == c.digest == _by_definition(images[:20], labels[:20])
    assert (a.source, c.source.startswith("npz:")) == ("cifar10", True)


def test_a_copy_with_fewer_images_than_asked_is_one_clear_error(tmp_path):
    images, labels = synthetic_images(20, (3, 32, 32)), _labels(20)
    write_cifar_batch(tmp_path / "cifar-10-batches-py" / "test_batch", images, labels)
    with pytest.raises(ValidationError) as err:
        load_eval_data("cifar10", data_dir=tmp_path, limit=25)
    assert str(err.value) == (
        f"the test files of data set 'cifar10' in {tmp_path} hold 20 images, fewer than the 25 to evaluate: "
        "put a copy that holds at least the first 25 there (or pass --data-dir with one), or pass --limit 20 "
        "for a smoke run (never ranked)"
    )
    assert len(load_eval_data("cifar10", data_dir=tmp_path, limit=20)) == 20
    # a custom set may be smaller than the suite: all of it is evaluated
    npz = tmp_path / "mine.npz"
    np.savez(npz, x=images, y=labels)
    assert len(load_eval_data("cifar10", custom=f"npz:{npz}", limit=25)) == 20


# --- the expected digests, recomputed from the data ---------------------------------------------
def test_every_packaged_suite_has_the_expected_digest_of_its_examples():
    for suite in list_suites():
        if suite.dataset in NO_DIGEST:
            assert expected_digest(suite.dataset, suite.num_examples) is None
        else:
            assert expected_digest(suite.dataset, suite.num_examples) is not None, suite.key
    assert set(EXPECTED_DIGESTS) == {"mnist", "mnist5k", "cifar10"}


def test_the_mnist5k_digests_are_those_of_its_test_split():
    images, labels = mnist5k_data.load("test")
    for n, digest in EXPECTED_DIGESTS["mnist5k"].items():
        assert _by_definition(images[:n], labels[:n]) == digest
        assert load_eval_data("mnist5k", limit=n).digest == digest


@needs_real_mnist
def test_the_real_mnist_files_and_a_prefix_copy_give_the_expected_digests(tmp_path):
    # ../shared holds the official gzip files directly in its folder
    for n, digest in EXPECTED_DIGESTS["mnist"].items():
        assert load_eval_data("mnist", data_dir=REAL_MNIST, limit=n).digest == digest
    images = read_idx(REAL_MNIST / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(REAL_MNIST / "t10k-labels-idx1-ubyte.gz")
    assert _by_definition(images[:1000, None], labels[:1000]) == EXPECTED_DIGESTS["mnist"][1000]
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte", images[:1000])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[:1000])
    for n in (200, 500, 1000):
        assert load_eval_data("mnist", data_dir=tmp_path, limit=n).digest == EXPECTED_DIGESTS["mnist"][n]


@needs_real_cifar10
def test_the_first_1000_cifar10_test_images_give_the_expected_digests_as_npz_and_as_a_batch(tmp_path):
    assert hashlib.sha256(REAL_CIFAR10_NPZ.read_bytes()).hexdigest() == CIFAR10_NPZ_SHA256
    with np.load(REAL_CIFAR10_NPZ) as npz:
        x, y = npz["x"], npz["y"]
    assert y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # the official test_batch's first labels
    write_cifar_batch(tmp_path / "cifar-10-batches-py" / "test_batch", x.transpose(0, 3, 1, 2), y)
    for n, digest in EXPECTED_DIGESTS["cifar10"].items():
        assert load_eval_data("cifar10", custom=f"npz:{REAL_CIFAR10_NPZ}", limit=n).digest == digest
        assert load_eval_data("cifar10", data_dir=tmp_path, limit=n).digest == digest
        assert _by_definition(x[:n].transpose(0, 3, 1, 2), y[:n]) == digest


# --- how a run stands ---------------------------------------------------------------------------
def test_the_digest_decides_how_a_run_stands():
    official = EXPECTED_DIGESTS["cifar10"][1000]
    other = "v1:" + "0" * 64
    npz = "npz:/data/first1000.npz sha256:" + "1" * 64
    cases = [
        # (data source, digest, examples, suite's examples) -> kind
        ((None, official, 1000, 1000), FULL),
        ((npz, official, 1000, 1000), FULL),  # a copy of the official examples, whatever file
        ((None, other, 1000, 1000), CUSTOM_DATA),  # the data set's own folder, other images
        ((npz, other, 1000, 1000), CUSTOM_DATA),
        ((None, EXPECTED_DIGESTS["cifar10"][200], 200, 1000), SMOKE),
        ((npz, EXPECTED_DIGESTS["cifar10"][200], 200, 1000), CUSTOM_DATA),
        ((None, None, 1000, 1000), FULL),  # stored before migration 0006: the data source decides
        ((npz, None, 1000, 1000), CUSTOM_DATA),
        ((None, other, 10000, 10000), FULL),  # no expected digest known for 10,000: as before
        ((npz, other, 10000, 10000), CUSTOM_DATA),
    ]
    for (source, digest, examples, full), kind in cases:
        assert run_kind("cifar10", source, digest, examples, full) == kind, (source, digest, examples)
    assert run_kind("cifar100", None, other, 1000, 1000) == FULL  # none known for cifar100


# --- end to end: evaluate, rank, export, import -------------------------------------------------
SUITE = """\
name: digest-check
version: 1
dataset: {dataset}
description: clean accuracy and ECE on the first {n} test images
changelog:
  - "1: first version"
num_examples: {n}
checks: {{examples: 8}}
measurements:
  ece: {{bins: 15}}
"""


def _card(root: Path, dataset: str) -> str:
    """The reference LeNet (standard training) as a card of ``dataset`` (mnist and mnist5k share the input)."""
    src = REPO / "model_cards" / "mnist5k"
    folder = root / "cards" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "lenet-standard.safetensors", folder)
    text = (src / "lenet-standard.yaml").read_text(encoding="utf-8")
    (folder / "lenet-standard.yaml").write_text(
        text.replace("mnist5k/lenet-standard", f"{dataset}/lenet-standard").replace(
            "dataset: mnist5k", f"dataset: {dataset}"
        ),
        encoding="utf-8",
    )
    return f"{dataset}/lenet-standard"


def _eval(root: Path, card: str, dataset: str, n: int, *args: str):
    suite = root / f"suite-{dataset}-{n}.yaml"
    suite.write_text(SUITE.format(dataset=dataset, n=n), encoding="utf-8")
    result = runner.invoke(
        app,
        [
            "eval",
            card,
            "--cards-dir",
            str(root / "cards"),
            "--suite",
            str(suite),
            "--device",
            "cpu",
            "--db",
            f"sqlite:///{root / 'results.db'}",
            *args,
        ],
    )
    return result


def _kinds(root: Path) -> list[tuple[str, str | None, str | None]]:
    store = Store(f"sqlite:///{root / 'results.db'}")
    return [
        (st.kind, st.run.data_source and st.run.data_source.split(" ")[0], st.run.data_digest)
        for st in store.standings()
    ]


def test_a_run_on_a_prefix_copy_is_ranked_and_a_run_on_other_images_is_not(tmp_path):
    card = _card(tmp_path, "mnist5k")
    images, labels = mnist5k_data.load("test")
    prefix, shuffled = tmp_path / "first300.npz", tmp_path / "swapped.npz"
    np.savez(prefix, x=images[:300, 0], y=labels[:300])  # [N, 28, 28]: another layout than the package's
    swapped = np.r_[1, 0, 2:300]
    np.savez(shuffled, x=images[swapped], y=labels[swapped])  # the same images, two of them swapped
    official = EXPECTED_DIGESTS["mnist5k"][200]

    for args in ((), ("--data", f"npz:{prefix}"), ("--data", f"npz:{shuffled}"), ("--limit", "100")):
        result = _eval(tmp_path, card, "mnist5k", 200, *args)
        assert result.exit_code == 0, result.output
    kinds = _kinds(tmp_path)
    assert kinds == [
        (FULL, None, official),
        (FULL, f"npz:{prefix.resolve()}", official),
        (CUSTOM_DATA, f"npz:{shuffled.resolve()}", examples_digest(images[swapped][:200], labels[swapped][:200])),
        (SMOKE, None, examples_digest(images[:100], labels[:100])),
    ]
    store = Store(f"sqlite:///{tmp_path / 'results.db'}")
    assert [r.id for r in store.leaderboard_runs()] == [2]  # the newest full run: the one on the npz copy
    shown = runner.invoke(app, ["results", "show", "2", "--db", f"sqlite:///{tmp_path / 'results.db'}"])
    assert shown.exit_code == 0 and "data digest" in shown.output and "ranked: a full run" in shown.output


@needs_real_mnist
def test_a_data_folder_with_only_the_first_test_images_gives_ranked_runs_and_one_with_others_does_not(tmp_path):
    card = _card(tmp_path, "mnist")
    images = read_idx(REAL_MNIST / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(REAL_MNIST / "t10k-labels-idx1-ubyte.gz")
    official, other = tmp_path / "official", tmp_path / "other"
    write_idx(official / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz", images[:200])
    write_idx(official / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz", labels[:200])
    write_idx(other / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz", images[200:400])  # real digits, not the first
    write_idx(other / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz", labels[200:400])
    assert _eval(tmp_path, card, "mnist", 200, "--data-dir", str(official)).exit_code == 0
    assert _eval(tmp_path, card, "mnist", 200, "--data-dir", str(other)).exit_code == 0
    assert [k for k, _, _ in _kinds(tmp_path)] == [FULL, CUSTOM_DATA]
    # a folder holding fewer images than the suite evaluates: one line, exit 1, nothing stored
    short = _eval(tmp_path, card, "mnist", 500, "--data-dir", str(official))
    assert short.exit_code == 1
    assert short.output.strip() == (
        f"Error: the test files of data set 'mnist' in {official} hold 200 images, fewer than the 500 to evaluate: "
        "put a copy that holds at least the first 500 there (or pass --data-dir with one), or pass --limit 200 "
        "for a smoke run (never ranked)"
    )
    assert len(_kinds(tmp_path)) == 2


def test_the_digest_is_exported_reimported_and_reexported_byte_for_byte(tmp_path):
    card = _card(tmp_path, "mnist5k")
    assert _eval(tmp_path, card, "mnist5k", 200).exit_code == 0
    url = f"sqlite:///{tmp_path / 'results.db'}"
    out = tmp_path / "out"
    assert runner.invoke(app, ["results", "export", "--run", "1", "--out", str(out), "--db", url]).exit_code == 0
    [file] = out.rglob("*.json")
    doc = json.loads(file.read_text(encoding="utf-8"))
    assert doc["format_version"] == 4
    assert doc["run"]["data_digest"] == EXPECTED_DIGESTS["mnist5k"][200]
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    assert runner.invoke(app, ["results", "import", str(file), "--db", target]).exit_code == 0
    [copy] = Store(target).standings()
    assert (copy.kind, copy.run.data_digest) == (FULL, EXPECTED_DIGESTS["mnist5k"][200])
    again = tmp_path / "again"
    assert (
        runner.invoke(
            app, ["results", "export", "--run", str(copy.run.id), "--out", str(again), "--db", target]
        ).exit_code
        == 0
    )
    assert (again / file.relative_to(out)).read_bytes() == file.read_bytes()


def _old_documents() -> list[Path]:
    """The published results files written before format version 4 (no data digest)."""
    files = sorted((REPO / "leaderboard" / "results").glob("*/*.json"))
    return [p for p in files if json.loads(p.read_text(encoding="utf-8"))["format_version"] < 4]


def test_a_run_that_recorded_no_digest_exports_as_version_3_and_imports_as_before(tmp_path):
    card = _card(tmp_path, "mnist5k")
    assert _eval(tmp_path, card, "mnist5k", 200).exit_code == 0
    url = f"sqlite:///{tmp_path / 'results.db'}"
    with Store(url).engine.begin() as conn:  # as a run stored before migration 0006
        conn.exec_driver_sql("UPDATE runs SET data_digest = NULL")
    out = tmp_path / "out"
    assert runner.invoke(app, ["results", "export", "--run", "1", "--out", str(out), "--db", url]).exit_code == 0
    [file] = out.rglob("*.json")
    doc = json.loads(file.read_text(encoding="utf-8"))
    assert doc["format_version"] == 3 and "data_digest" not in doc["run"]
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    assert runner.invoke(app, ["results", "import", str(file), "--db", target]).exit_code == 0
    [copy] = Store(target).standings()
    assert (copy.kind, copy.run.data_digest) == (FULL, None)
    again = tmp_path / "again"
    exported = runner.invoke(app, ["results", "export", "--run", "1", "--out", str(again), "--db", target])
    assert exported.exit_code == 0
    assert (again / file.relative_to(out)).read_bytes() == file.read_bytes()
    # a version 3 document that carries the field anyway is refused
    doc["run"]["data_digest"] = EXPECTED_DIGESTS["mnist5k"][200]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    refused = runner.invoke(app, ["results", "import", str(bad), "--db", f"sqlite:///{tmp_path / 'bad.db'}"])
    assert refused.exit_code == 1
    assert "field 'run.data_digest' is new in format_version 4, but the document says 3" in refused.output


@pytest.mark.parametrize("path", _old_documents(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_published_documents_without_a_digest_still_import_and_stand_as_before(path, tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    result = runner.invoke(app, ["results", "import", str(path), "--db", url])
    assert result.exit_code == 0, result.output
    [standing] = Store(url).standings()
    assert standing.run.data_digest is None
    assert standing.kind == (CUSTOM_DATA if standing.run.data_source else FULL)
    shown = runner.invoke(app, ["results", "show", str(standing.run.id), "--db", url])
    assert re.search(r"data digest\s*│\s*not recorded", shown.output)
