"""NSPGD's image strips: which pairs get one, the PNG's pixels, and the panels' numbers against the
stored per-pair values and an independent forward pass."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from data_helpers import class_mean_model
from PIL import Image

from invarbench.data import load_eval_data
from invarbench.evaluation.measure import measure_batch
from invarbench.measurements.images import GAP_PX, MIN_PANEL_PX, image_strip_png, panel_scale
from invarbench.measurements.nspgd import IMAGE_STRIPS, STRIP_POINTS, strip_name, strip_pairs
from invarbench.models.wrapper import ModelWrapper
from invarbench.suites.schema import Suite


def make_suite(num_pairs: int = 30, max_iter: int = 12, seed: int = 3) -> Suite:
    widths = {"points": [0, 4, 8], "directions": 4, "radii": [1, 2], "max_pairs": 6}
    return Suite.model_validate(
        {
            "name": "test",
            "version": 1,
            "dataset": "mnist5k",
            "description": "unit test",
            "changelog": ["1: x"],
            "num_examples": 40,
            "seed": seed,
            "checks": {"examples": 20},
            "measurements": {
                "nspgd": {"eta": 0.1, "delta": 0.05, "max_iter": max_iter, "pairs": {"num_pairs": num_pairs}},
                **({"path_width": widths} if max_iter > 8 else {}),
            },
        }
    )


@pytest.fixture(scope="module")
def data():
    return load_eval_data("mnist5k", limit=40)


@pytest.fixture(scope="module")
def model():
    train = load_eval_data("mnist5k", split="train", limit=1000)
    return ModelWrapper(class_mean_model(train.x, train.y, scale=4.0), num_classes=10, input_shape=(1, 28, 28))


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


# --- which pairs -----------------------------------------------------------------------------------


def test_strip_pairs_are_a_fixed_seeded_handful_of_distinct_pairs():
    chosen = strip_pairs(500, seed=0)
    assert len(chosen) == IMAGE_STRIPS == len(set(chosen.tolist()))
    assert chosen.tolist() == sorted(chosen.tolist()) and chosen.min() >= 0 and chosen.max() < 500
    assert strip_pairs(500, seed=0).tolist() == chosen.tolist()  # the same run draws the same pairs
    assert strip_pairs(500, seed=1).tolist() != chosen.tolist()
    assert strip_pairs(3, seed=0).tolist() == [0, 1, 2]  # fewer pairs than strips: every pair
    assert strip_pairs(0, seed=0).tolist() == []


def test_strip_pairs_are_uniform_over_seeds():
    """Each pair is drawn with probability IMAGE_STRIPS / count: over 2,000 seeds every one of 10
    pairs is drawn 800 times in expectation (binomial sd 22); a draw biased to low or high
    numbers (e.g. a modulo without the Fisher-Yates offset) is far outside 5 sd."""
    counts = np.zeros(10)
    for seed in range(2000):
        counts[strip_pairs(10, seed)] += 1
    assert np.all(np.abs(counts - 2000 * IMAGE_STRIPS / 10) < 5 * np.sqrt(2000 * 0.4 * 0.6)), counts


# --- the picture -----------------------------------------------------------------------------------


def test_the_png_holds_the_panels_enlarged_side_by_side_exactly():
    panels = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    png = image_strip_png(panels)
    s = panel_scale(28)
    assert s == 4 and 28 * s >= MIN_PANEL_PX
    pixels = decode(png)
    assert pixels.shape == (28 * s, 3 * 28 * s + 2 * GAP_PX)
    expected = (panels * 255).round().to(torch.uint8).numpy()
    for k in range(3):
        left = k * (28 * s + GAP_PX)
        block = pixels[:, left : left + 28 * s]
        assert np.array_equal(block[::s, ::s], expected[k, 0])  # nearest neighbour: every s-th pixel
        assert np.array_equal(block, np.kron(expected[k, 0], np.ones((s, s), dtype=np.uint8)))
        if k < 2:
            assert np.all(pixels[:, left + 28 * s : left + 28 * s + GAP_PX] == 255)
    assert image_strip_png(panels.clone()) == png  # deterministic bytes


def test_colour_panels_stay_colour_and_out_of_range_values_are_clipped():
    panels = torch.zeros(2, 3, 32, 32)
    panels[0, 0] = 2.0  # red, above 1
    panels[1, 2] = 1.0  # blue
    panels[1, 1] = -1.0  # below 0
    pixels = decode(image_strip_png(panels))
    s = panel_scale(32)
    assert pixels.shape == (32 * s, 2 * 32 * s + GAP_PX, 3)
    assert pixels[0, 0].tolist() == [255, 0, 0]
    assert pixels[0, 32 * s + GAP_PX].tolist() == [0, 0, 255]


@pytest.mark.parametrize("shape", [(0, 1, 8, 8), (2, 2, 8, 8), (1, 8, 8)])
def test_bad_panels_are_refused(shape):
    with pytest.raises(ValueError, match="image_strip_png"):
        image_strip_png(torch.zeros(shape))


# --- in a measured batch ---------------------------------------------------------------------------


def test_the_strips_of_a_batch_show_the_walks_that_were_measured(model, data):
    suite = make_suite()
    values, artifacts = measure_batch(model, data, 0, 40, suite, torch.Generator().manual_seed(0))
    pairs = values["nspgd"]
    drawn = [p for p in strip_pairs(30, suite.seed).tolist() if pairs["valid"][p]]
    assert drawn, "the class-mean model classifies most sources correctly"
    assert sorted(artifacts) == sorted(strip_name(p, ext) for p in drawn for ext in ("json", "png"))
    for p in drawn:
        doc = json.loads(artifacts[strip_name(p, "json")])
        assert (doc["pair"], doc["source"], doc["target"]) == (p, pairs["source"][p], pairs["target"][p])
        assert (doc["source_label"], doc["target_label"]) == (pairs["source_label"][p], pairs["target_label"][p])
        assert doc["image"] == strip_name(p, "png")
        assert doc["accepted_steps"] == pairs["accepted_steps"][p]
        panels = doc["panels"]
        a = doc["accepted_steps"]
        walk_iters = sorted({(a * j) // STRIP_POINTS for j in range(STRIP_POINTS)})
        assert [q["label"] for q in panels] == [
            "source",
            *(f"step {i}" for i in walk_iters if i > 0),
            f"end (step {a})",
            "target",
        ]
        # The numbers under each panel are those of the walk the run stored (the strip walks the pair
        # alone, and float kernels differ between a batch and one image: equal to a few digits) ...
        assert panels[0]["p_source"] == pytest.approx(pairs["p_source_start"][p], rel=1e-5)
        assert panels[-2]["p_source"] == pytest.approx(pairs["p_source_final"][p], rel=1e-3)
        assert panels[0]["distance_to_target_l2"] == pytest.approx(pairs["initial_l2"][p], rel=1e-6)
        assert panels[-2]["distance_to_target_l2"] == pytest.approx(pairs["remaining_l2"][p], rel=1e-3)
        assert panels[-1]["distance_to_target_l2"] == 0.0
        # ... and of the pictured images: decode the PNG and ask the model independently
        # (8-bit pixels: the confidences agree to the rounding of the picture).
        pixels = decode(artifacts[strip_name(p, "png")]).astype(np.float64) / 255.0
        s = panel_scale(28)
        images = torch.stack(
            [
                torch.from_numpy(pixels[::s, k * (28 * s + GAP_PX) : k * (28 * s + GAP_PX) + 28 * s : s]).float()[None]
                for k in range(len(panels))
            ]
        )
        assert torch.equal(images[0], data.x[p]) and torch.equal(images[-1], data.x[doc["target"]])
        with torch.no_grad():
            probs = torch.softmax(model(images).double(), dim=1)
        for k, q in enumerate(panels):
            assert q["p_source"] == pytest.approx(float(probs[k, doc["source_label"]]), abs=0.02)
            assert float(probs[k, q["predicted"]]) == pytest.approx(float(probs[k].max()), abs=0.02)
        # Every walk panel keeps the source class's confidence within delta of the start (the walk's rule).
        assert all(panels[0]["p_source"] - q["p_source"] < 0.05 + 1e-9 for q in panels[:-1])


def test_the_strips_change_no_number_and_follow_their_pairs_across_batches(model, data):
    suite = make_suite()
    whole, files = measure_batch(model, data, 0, 40, suite, torch.Generator().manual_seed(0))
    split_files: dict[str, bytes] = {}
    for start in range(0, 40, 8):
        _, got = measure_batch(model, data, start, start + 8, suite, torch.Generator().manual_seed(0))
        assert all(start <= json.loads(v)["pair"] < start + 8 for k, v in got.items() if k.endswith(".json"))
        split_files.update(got)
    assert split_files == files  # a pair's strip depends on the pair only, not on its batch


def test_no_walk_no_strip(model, data):
    _, artifacts = measure_batch(model, data, 0, 40, make_suite(max_iter=0), torch.Generator().manual_seed(0))
    assert artifacts == {}
