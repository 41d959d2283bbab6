"""The data set registry: native MNIST/CIFAR files, offline behaviour, npz:PATH evaluation sets."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from data_helpers import (
    REAL_CIFAR10_NPZ,
    REAL_MNIST,
    needs_real_cifar10,
    needs_real_mnist,
    synthetic_images,
    write_cifar_batch,
    write_idx,
    write_mnist_test,
)

from invarbench.data import DATASETS, load_eval_data
from invarbench.data.native import read_cifar_batch, read_idx
from invarbench.errors import NotFoundError, OptionError, ValidationError


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test downloads anything; the one that exercises a download replaces the fetcher."""
    monkeypatch.setenv("INVARBENCH_OFFLINE", "1")
    monkeypatch.delenv("INVARBENCH_DATA", raising=False)


def test_registry_holds_the_four_data_sets():
    assert DATASETS.names() == ["cifar10", "cifar100", "mnist", "mnist5k"]
    assert DATASETS.get("cifar100").num_classes == 100
    assert DATASETS.get("mnist").input_shape == (1, 28, 28)
    with pytest.raises(NotFoundError, match=r"unknown dataset 'cifar1'. Did you mean 'cifar10'\?"):
        load_eval_data("cifar1")


def test_the_registry_names_each_data_sets_classes_in_label_order():
    from invarbench.data import DatasetSpec, class_name

    # CIFAR-10's published order (batches.meta, label_names).
    cifar10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert list(DATASETS.get("cifar10").class_names) == cifar10
    assert [class_name("cifar10", k) for k in range(10)] == cifar10
    assert (class_name("cifar10", 8), class_name("cifar10", 9)) == ("ship", "truck")
    # CIFAR-100's fine labels: 100 names in alphabetical order, from apple to worm.
    fine = DATASETS.get("cifar100").class_names
    assert len(set(fine)) == 100 and list(fine) == sorted(fine)
    assert (fine[0], fine[1], fine[58], fine[99]) == ("apple", "aquarium_fish", "pickup_truck", "worm")
    for digits in ("mnist", "mnist5k"):
        assert [class_name(digits, k) for k in range(10)] == [str(k) for k in range(10)]
    # A data set without names, a label out of range: the label as text.
    assert class_name("no-such-data-set", 3) == "3" and class_name("cifar10", 10) == "10"
    with pytest.raises(ValueError, match="one non-empty name per class"):
        DatasetSpec("two", 2, (1, 2, 2), "two classes", lambda split, folder: None, class_names=("a",))


# --- IDX ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    images = synthetic_images(5, (28, 28))
    out = read_idx(write_idx(tmp_path / name, images))
    assert out.dtype == np.uint8 and out.shape == (5, 28, 28)
    np.testing.assert_array_equal(out, images)


def test_idx_rejects_bad_magic_and_truncation(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValidationError, match="is not an IDX file"):
        read_idx(bad)
    good = write_idx(tmp_path / "x-idx3-ubyte", synthetic_images(3, (28, 28)))
    good.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(ValidationError, match=r"truncated or corrupt: its header announces shape \(3, 28, 28\)"):
        read_idx(good)


# --- MNIST --------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_a_folder_with_only_the_test_files(tmp_path, gz):
    images, labels = write_mnist_test(tmp_path / "MNIST" / "raw", n=12, gz=gz)
    data = load_eval_data("mnist", data_dir=tmp_path)
    assert data.x.shape == (12, 1, 28, 28) and data.total == 12 and data.source == "mnist"
    assert data.y.tolist() == labels.tolist()
    torch.testing.assert_close(data.x[:, 0], torch.from_numpy(images).float() / 255)
    head = load_eval_data("mnist", data_dir=tmp_path, limit=5)
    assert head.y.tolist() == labels[:5].tolist() and head.total == 12
    torch.testing.assert_close(head.x, data.x[:5])


def test_mnist_files_may_sit_directly_in_the_data_folder(tmp_path):
    _, labels = write_mnist_test(tmp_path, n=4)
    assert load_eval_data("mnist", data_dir=tmp_path).y.tolist() == labels.tolist()


def test_mnist_default_folder_is_under_xdg_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    write_mnist_test(tmp_path / "invarbench" / "data" / "MNIST" / "raw", n=3)
    assert len(load_eval_data("mnist")) == 3
    monkeypatch.setenv("INVARBENCH_DATA", str(tmp_path / "elsewhere"))
    write_mnist_test(tmp_path / "elsewhere" / "MNIST" / "raw", n=6)
    assert len(load_eval_data("mnist")) == 6


def test_mnist_missing_offline_names_folder_and_files(tmp_path):
    with pytest.raises(NotFoundError) as exc:
        load_eval_data("mnist", data_dir=tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    assert str(exc.value) == (
        f"data set 'mnist' needs t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] in {raw}; they are "
        "missing and INVARBENCH_OFFLINE is set, so none was downloaded. Put the files there, or pass --data-dir "
        "with a folder that holds them"
    )


def test_mnist_download_failure_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("INVARBENCH_OFFLINE")
    calls = []

    def no_network(url, download_root, filename, md5):
        calls.append(url)
        raise URLError("Name or service not known")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", no_network)
    with pytest.raises(NotFoundError, match=r"they are missing and downloading them failed \(<urlopen error Name"):
        load_eval_data("mnist", data_dir=tmp_path)
    # Only the test split's two files are fetched, each from every mirror in turn.
    assert calls and all("t10k-" in url for url in calls)


def test_mnist_download_puts_files_in_torchvision_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("INVARBENCH_OFFLINE")
    images = synthetic_images(3, (28, 28))

    def fake_download(url, download_root, filename, md5):
        array = images if "images" in filename else np.array([1, 2, 3], dtype=np.uint8)
        write_idx(Path(download_root) / filename, array)

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", fake_download)
    data = load_eval_data("mnist", data_dir=tmp_path)
    assert data.y.tolist() == [1, 2, 3]
    assert (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").is_file()


def test_mnist_label_count_mismatch(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte.gz", synthetic_images(4, (28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValidationError, match="holds 3 labels for the 4 images"):
        load_eval_data("mnist", data_dir=tmp_path)


def test_unknown_split(tmp_path):
    with pytest.raises(ValidationError, match="data set 'mnist' has splits 'train' and 'test', not 'val'"):
        load_eval_data("mnist", split="val", data_dir=tmp_path)


@needs_real_mnist
def test_real_mnist_test_set(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        os.symlink(REAL_MNIST / name, raw / name)
    data = load_eval_data("mnist", data_dir=tmp_path)
    assert data.x.shape == (10000, 1, 28, 28) and data.total == 10000
    assert data.y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the published order
    assert torch.bincount(data.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert float(data.x.min()) == 0.0 and float(data.x.max()) == 1.0
    # The shared folder itself works as --data-dir too.
    direct = load_eval_data("mnist", data_dir=REAL_MNIST, limit=100)
    torch.testing.assert_close(direct.x, data.x[:100])


# --- CIFAR --------------------------------------------------------------------------------------
@pytest.mark.parametrize("python2", [True, False])
def test_cifar10_from_only_the_test_batch(tmp_path, python2):
    images = synthetic_images(7, (3, 32, 32))
    labels = np.array([3, 8, 8, 0, 6, 6, 1])
    write_cifar_batch(tmp_path / "cifar-10-batches-py" / "test_batch", images, labels, python2=python2)
    data = load_eval_data("cifar10", data_dir=tmp_path, limit=6)
    assert data.x.shape == (6, 3, 32, 32) and data.total == 7
    assert data.y.tolist() == [3, 8, 8, 0, 6, 6]
    torch.testing.assert_close(data.x, torch.from_numpy(images[:6]).float() / 255)


def test_cifar100_uses_fine_labels(tmp_path):
    images = synthetic_images(3, (3, 32, 32))
    write_cifar_batch(tmp_path / "cifar-100-python" / "test", images, np.array([99, 0, 42]), label_key="fine_labels")
    assert load_eval_data("cifar100", data_dir=tmp_path).y.tolist() == [99, 0, 42]


def test_cifar_missing_offline(tmp_path):
    with pytest.raises(NotFoundError, match=rf"data set 'cifar10' needs test_batch in {tmp_path}/cifar-10-batches-py;"):
        load_eval_data("cifar10", data_dir=tmp_path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-marker",))


def test_cifar_reader_refuses_anything_but_numpy_arrays(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({"data": _Exploit(), "labels": [0]}, f, protocol=2)
    with pytest.raises(ValidationError, match=r"is not a CIFAR data batch: refusing to load (posix|os)\.system"):
        read_cifar_batch(path, "labels")
    assert not (tmp_path / "pwned-marker").exists()


def test_cifar_batch_with_wrong_shape(tmp_path):
    path = tmp_path / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, f)
    with pytest.raises(ValidationError, match=r"expected uint8 data \[N, 3072\] and N labels"):
        read_cifar_batch(path, "labels")


# --- npz:PATH -----------------------------------------------------------------------------------
def _npz(tmp_path: Path, **arrays) -> str:
    path = tmp_path / "eval.npz"
    np.savez(path, **arrays)
    return f"npz:{path}"


@pytest.mark.parametrize("layout", ["nchw", "nhwc", "nhw"])
def test_npz_replaces_the_images_of_the_data_set(tmp_path, layout):
    images = synthetic_images(5, (1, 28, 28))
    stored = {"nchw": images, "nhwc": images.transpose(0, 2, 3, 1), "nhw": images[:, 0]}[layout]
    spec = _npz(tmp_path, x=stored, y=np.array([0, 1, 2, 3, 9], dtype=np.int32))
    data = load_eval_data("mnist5k", custom=spec, limit=4)
    assert data.dataset == "mnist5k" and data.total == 5 and len(data) == 4
    assert data.y.dtype == torch.int64 and data.y.tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(data.x, torch.from_numpy(images[:4]).float() / 255)
    assert data.source.startswith(f"npz:{(tmp_path / 'eval.npz').resolve()} sha256:")


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"x": np.zeros((2, 28, 28, 1), np.float32), "y": np.zeros(2, np.int64)},
            "x must be uint8 images (0..255), got dtype float32",
        ),
        (
            {"x": np.zeros((2, 3, 32, 32), np.uint8), "y": np.zeros(2, np.int64)},
            "x has shape [2, 3, 32, 32]; data set 'mnist5k' needs images [N, 1, 28, 28] (NCHW) "
            "or [N, 28, 28, 1] (NHWC)",
        ),
        ({"x": np.zeros((2, 28, 28), np.uint8), "y": np.zeros(3, np.int64)}, "x holds 2 images but y holds 3 labels"),
        (
            {"x": np.zeros((2, 28, 28), np.uint8), "y": np.array([0, 10])},
            "labels must lie in 0..9 for data set 'mnist5k', got 0..10",
        ),
        (
            {"x": np.zeros((2, 28, 28), np.uint8), "y": np.array([0.0, 1.0])},
            "y must be a 1-D array of integer labels, got float64 [2]",
        ),
        (
            {"images": np.zeros((2, 28, 28), np.uint8)},
            "must hold arrays 'x' (images) and 'y' (labels); it holds: images",
        ),
        (
            {"x": np.zeros((2, 28, 28), np.uint8), "y": np.array([0, None], dtype=object)},
            "holds arrays that need pickle to load",
        ),
    ],
)
def test_npz_errors(tmp_path, arrays, message):
    with pytest.raises(ValidationError) as exc:
        load_eval_data("mnist5k", custom=_npz(tmp_path, **arrays))
    assert message in str(exc.value)


def test_a_limit_below_one_is_an_option_error():
    with pytest.raises(OptionError, match="^limit must be at least 1, got 0$") as bad:
        load_eval_data("mnist5k", limit=0)
    assert bad.value.naming("--limit") == "--limit must be at least 1, got 0"


def test_npz_path_errors(tmp_path):
    with pytest.raises(OptionError, match="^data must look like npz:PATH") as bad:  # named as the Python API has it
        load_eval_data("mnist5k", custom=str(tmp_path / "x.npz"))
    assert bad.value.option == "data" and bad.value.naming("--data").startswith("--data must look like npz:PATH")
    with pytest.raises(NotFoundError, match=f"custom evaluation set {tmp_path}/missing.npz does not exist"):
        load_eval_data("mnist5k", custom=f"npz:{tmp_path}/missing.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(ValidationError, match="is not a readable .npz file"):
        load_eval_data("mnist5k", custom=f"npz:{tmp_path}/junk.npz")


@needs_real_cifar10
def test_real_cifar10_subset_as_npz(tmp_path):
    local = tmp_path / "c.npz"
    shutil.copy(REAL_CIFAR10_NPZ, local)
    data = load_eval_data("cifar10", custom=f"npz:{local}")
    assert data.x.shape == (1000, 3, 32, 32)
    assert data.y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
