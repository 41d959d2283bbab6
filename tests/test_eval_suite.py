"""A whole suite through the runner: every metric stored, deterministic, and `--data npz:PATH`."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from invarbench.cards import resolve_card
from invarbench.cli.app import app
from invarbench.data import load_eval_data
from invarbench.evaluation import EvalOptions, evaluate
from invarbench.store import Store

LIMIT = 12
METRICS = [
    "clean_accuracy",
    "robust_accuracy_linf",
    "robust_accuracy_l2",
    "median_min_l2_distance",
    "nspgd_closure",
    "nspgd_target_distance_l2",
    "path_width",
    "ece",
    "human_agreement_relabelled",
    "human_agreement_unchanged",
]
runner = CliRunner()


@pytest.fixture(scope="module")
def npz_of_the_test_images(tmp_path_factory):
    """The first test images of mnist5k, as a user would export them: uint8 NHWC."""
    data = load_eval_data("mnist5k", limit=LIMIT)
    images = np.rint(data.x.numpy() * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    path = tmp_path_factory.mktemp("npz") / "mine.npz"
    np.savez(path, x=images, y=data.y.numpy())
    return path


def test_quick_suite_is_deterministic_and_npz_replaces_the_images(tmp_path, npz_of_the_test_images):
    ref = resolve_card("mnist5k/lenet-standard", None)
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    base = dict(suite="quick", limit=LIMIT, batch_size=5, device="cpu")
    first = evaluate(ref, store, EvalOptions(**base))
    custom = evaluate(ref, store, EvalOptions(**base, data=f"npz:{npz_of_the_test_images}"))
    assert [m.name for m in first.metrics] == METRICS
    assert first.suite.key == custom.suite.key == "quick/mnist5k"
    # The same images under the same suite, seed and device: the same numbers, bit for bit.
    assert custom.metrics == first.metrics
    assert first.examples == LIMIT
    # the run says where its images came from, and only the data set's own run is a leaderboard row
    assert store.get_run(first.run_id).data_source is None
    source = store.get_run(custom.run_id).data_source
    assert source.startswith(f"npz:{npz_of_the_test_images.resolve()} sha256:")
    # Both are --limit runs of the quick suite: neither is ranked; the second is on custom data.
    assert store.latest_finished_runs() == []
    assert {st.run.id: st.kind for st in store.unranked_runs()} == {first.run_id: "smoke", custom.run_id: "custom_data"}


def test_cli_eval_with_custom_data(tmp_path, npz_of_the_test_images):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    result = runner.invoke(
        app,
        [
            "eval",
            "mnist5k/lenet-standard",
            "--suite",
            "quick",
            "--limit",
            "6",
            "--device",
            "cpu",
            "--db",
            db,
            "--data",
            f"npz:{npz_of_the_test_images}",
        ],
    )
    assert result.exit_code == 0, result.output
    for name in METRICS:
        assert name in result.stdout


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "{tmp}/nothing.npz",
            "Error: --data must look like npz:PATH (a .npz file with arrays x and y), got '{tmp}/nothing.npz'\n",
        ),
        ("npz:{tmp}/nothing.npz", "Error: custom evaluation set {tmp}/nothing.npz does not exist\n"),
    ],
)
def test_cli_eval_data_errors(tmp_path, value, message):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    result = runner.invoke(
        app,
        [
            "eval",
            "mnist5k/lenet-standard",
            "--suite",
            "quick",
            "--device",
            "cpu",
            "--db",
            db,
            "--data",
            value.format(tmp=tmp_path),
        ],
    )
    assert result.exit_code == 1
    assert result.stderr == message.format(tmp=tmp_path)


def test_peak_memory_is_the_evaluating_process_own_not_its_parents():
    import subprocess
    import sys

    from invarbench.store.probes import peak_rss_bytes

    ballast = bytearray(512 * 2**20)  # this process now peaks above 512 MiB
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page, so it is resident
    parent = peak_rss_bytes()
    child = subprocess.run(
        [sys.executable, "-c", "from invarbench.store.probes import peak_rss_bytes as p; print(p())"],
        capture_output=True,
        text=True,
        check=True,
    )
    del ballast
    assert parent > 512 * 2**20
    assert 0 < int(child.stdout) < parent - 256 * 2**20  # a fresh process, not the inherited peak
