"""The real-MNIST pipeline of benchmarks/real_mnist.py, in miniature (skipped without the data).

Trains the standard and the PGD-trained LeNet for a few epochs on 1,000 real MNIST test images
with the reference training code and runs a tiny suite on 100 other images. It checks that the
pipeline runs end to end on real data and gives sane numbers; the scientific comparison is the
script's full run, not this test.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
MNIST_DIR = ROOT.parent / "shared" / "external" / "mnist"

pytestmark = pytest.mark.skipif(
    not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file() or not (MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason=f"real MNIST test files are not in {MNIST_DIR}",
)


def _script():
    spec = importlib.util.spec_from_file_location("real_mnist", ROOT / "benchmarks" / "real_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_mnist_pipeline() -> None:
    rm = _script()
    assert rm.mnist_available(MNIST_DIR)
    data = rm.load_real_mnist(MNIST_DIR)
    assert len(data) == 10000 and data.x.shape[1:] == (1, 28, 28)
    assert float(data.x.min()) >= 0 and float(data.x.max()) <= 1
    assert sorted(set(data.y.tolist())) == list(range(10))

    train, held_out = rm.part(data, 0, 1000), rm.part(data, 9900, 10000)
    torch.manual_seed(0)
    configs = rm.train_configs(len(train), quick=True)
    assert [c.name for c in configs] == ["lenet-standard", "lenet-pgd-at"]
    assert [c.adversarial for c in configs] == [False, True]
    models = rm.train_models(train, configs, log=lambda s: None)

    suite = rm.suite_for("quick", "mnist", pairs=6, width_pairs=2)
    m = suite.measurements
    suite = suite.model_copy(
        update={
            "measurements": m.replace(
                pgd_linf=replace(m.pgd_linf, steps=5),
                pgd_l2=replace(m.pgd_l2, steps=5),
                min_norm=replace(m.min_norm, steps=5, refine_steps=5),
                nspgd=replace(m.nspgd, max_iter=30),
                path_width=replace(m.path_width, directions=8, points=(0, 10, 20)),
            )
        }
    )
    results = {
        name: rm.evaluate(model, held_out, suite, torch.device("cpu"), batch_size=50) for name, model in models.items()
    }
    standard = results["lenet-standard"]
    # A standard LeNet trained on 1,000 real digits for two epochs is far better than chance.
    assert standard["clean_accuracy"].value > 0.5
    assert standard["clean_accuracy"].n == 100
    for metrics in results.values():
        for name in ("clean_accuracy", "robust_accuracy_linf", "robust_accuracy_l2"):
            assert 0.0 <= metrics[name].value <= 1.0, name
        # Closure is over the pairs whose source is classified correctly (the barely trained
        # PGD model may have none among the few pairs): NaN over no pairs.
        closure = metrics["nspgd_closure"]
        assert (closure.n == 0 and math.isnan(closure.value)) or 0.0 <= closure.value <= 1.0
        assert metrics["robust_accuracy_linf"].value <= metrics["clean_accuracy"].value
        assert metrics["median_min_l2_distance"].value >= 0
        width = metrics["path_width"].value
        assert math.isnan(width) or 0.0 <= width <= max(suite.measurements.path_width.radii)
    assert "WIDER" in rm.answer(results, "lenet-standard", "lenet-pgd-at") or "NOT wider" in rm.answer(
        results, "lenet-standard", "lenet-pgd-at"
    )
