"""The 18 public CIFAR-10 checkpoints: cards, conversion and clean accuracy against the upstream's numbers.

What needs only committed files (the cards, the safetensors files beside them, the licence notices,
the architectures, the custom-op check) always runs. The conversion from the upstream pickles and
the accuracy on real images need ``../shared/external`` and skip without it.

Accuracy is measured on the first 1,000 CIFAR-10 test images through the project's own loading
(:func:`invarbench.models.loading.load_model`: checksum, safetensors, the card's architecture and
its mean/std in the wrapper). Where the upstream gives a count on those 1,000 images (ERAN's ``acc``
field) the count must be equal; where it gives a figure on the whole test set, the count on the first
1,000 must lie in the central 99.9% of a binomial(1000, upstream accuracy) distribution.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from invarbench.card_checks import check_card
from invarbench.cards.catalog import load_card
from invarbench.models.architectures import build_architecture
from invarbench.models.loading import load_model

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # 'tools' is a folder of the checkout, not of the installed package
    sys.path.insert(0, str(ROOT))

from tools.checkpoints import ConversionError  # noqa: E402
from tools.checkpoints.cifar10 import CONVERSIONS, masked_relu_as_relu  # noqa: E402

CARDS = ROOT / "model_cards"
EXTERNAL = ROOT.parent / "shared" / "external"
CHECKPOINTS = EXTERNAL / "checkpoints"
TEST_IMAGES = EXTERNAL / "cifar10" / "test_first1000.npz"
IDS = [c.card for c in CONVERSIONS]

needs_checkpoints = pytest.mark.skipif(
    not (CHECKPOINTS / "cifar10").is_dir(), reason=f"the upstream checkpoints are not in {CHECKPOINTS}"
)
needs_images = pytest.mark.skipif(not TEST_IMAGES.is_file(), reason=f"{TEST_IMAGES} is not there")

# Licence texts: a phrase of each upstream licence that its notice must contain.
LICENCE_PHRASES = {
    "MIT": "Permission is hereby granted, free of charge",
    "BSD-2-Clause": "Redistribution and use in source and binary forms",
    "BSD-3-Clause": "Neither the name of the copyright holder",
}


def _card_path(card_id: str) -> Path:
    return CARDS / f"{card_id}.yaml"


def test_every_card_has_a_conversion_and_every_conversion_a_card() -> None:
    on_disk = sorted(f"cifar10/{p.stem}" for p in (CARDS / "cifar10").glob("*.yaml"))
    assert on_disk == sorted(IDS)
    assert len(IDS) == 18


@pytest.mark.parametrize("card_id", IDS)
def test_card_validates_loads_and_ships_its_licence(card_id: str) -> None:
    check = check_card(_card_path(card_id), cards_dir=CARDS)  # what 'invarbench cards validate' runs
    ref = check.ref
    card = ref.card
    assert card.id == card_id
    assert card.dataset == "cifar10" and card.num_classes == 10 and card.format == "safetensors"
    assert card.preprocessing.input_size == [3, 32, 32]
    origin = card.origin
    assert origin is not None and origin.training and origin.authors
    assert card.license == origin.license
    conversion = next(c for c in CONVERSIONS if c.card == card_id)
    notice = (ref.folder / conversion.licence).read_text(encoding="utf-8")
    assert LICENCE_PHRASES[origin.license] in notice
    loaded = load_model(ref)  # checksum, safetensors, strict load, logits' shape
    assert loaded.file_sha256 == card.source.sha256
    with torch.no_grad():
        logits = loaded.wrapper(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 10) and bool(torch.isfinite(logits).all())


def test_cnn_a_shares_one_architecture_across_labs() -> None:
    """SDP-FO's four CNN-A, the custom-op CNN-A-wide, OVAL's 'wide' and Wong et al.'s 'small' are one shape."""
    names = {c.card: load_card(_card_path(c.card)).card.architecture.name for c in CONVERSIONS}
    sharing = sorted(k for k, v in names.items() if v == "cifar_cnn_a")
    assert sharing == sorted(
        [
            "cifar10/sdp-cnn-a-adv",
            "cifar10/sdp-cnn-a-adv4",
            "cifar10/sdp-cnn-a-mix",
            "cifar10/sdp-cnn-a-mix4",
            "cifar10/abcrown-cnn-a-wide-adv",
            "cifar10/oval-wide-kw",
            "cifar10/wong-scaled-small-8px-stage0",
            "cifar10/wong-scaled-small-l2-36px-stage0",
        ]
    )
    keys = list(build_architecture("cifar_cnn_a").state_dict())
    assert keys == [f"{i}.{p}" for i in (0, 2, 5, 7) for p in ("weight", "bias")]  # upstream Sequential indices


# ---------------------------------------------------------------- the custom-op check (synthetic tensors)


def _custom_op_state(mask_value: float = 0.0, slope_value: float = 0.5) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    layers = {"conv1": "0", "conv2": "2", "linear1": "5", "linear2": "7"}
    reference = build_architecture("cifar_cnn_a").state_dict()
    for name, index in layers.items():
        for p in ("weight", "bias"):
            state[f"{name}.{p}"] = reference[f"{index}.{p}"].clone()
    for i, shape in ((1, (16, 16, 16)), (2, (32, 8, 8)), (3, (100,))):
        state[f"linear_masked_relu{i}.mask"] = torch.full(shape, 0.0)
        state[f"linear_masked_relu{i}.slope"] = torch.full(shape, slope_value)
        state[f"linear_masked_relu{i}.bias"] = torch.full(shape, 0.25)
    state["linear_masked_relu2.mask"][3, 1, 2] = mask_value
    return state


def test_masked_relu_with_zero_masks_becomes_plain_relu_cnn_a() -> None:
    state = _custom_op_state()
    weights = masked_relu_as_relu(state)
    assert sorted(weights) == sorted(build_architecture("cifar_cnn_a").state_dict())
    assert torch.equal(weights["5.weight"], state["linear1.weight"])
    # The upstream activation relu(x)(1 - m) + (s x + b) m with m = 0 is relu(x): same logits as the plain net.
    net = build_architecture("cifar_cnn_a")
    net.load_state_dict(weights)
    x = torch.randn(4, 3, 32, 32)
    h = x
    for conv, act in (("conv1", "linear_masked_relu1"), ("conv2", "linear_masked_relu2")):
        h = torch.nn.functional.conv2d(h, state[f"{conv}.weight"], state[f"{conv}.bias"], stride=2, padding=1)
        m, s, b = (state[f"{act}.{p}"] for p in ("mask", "slope", "bias"))
        h = h.clamp(min=0) * (1 - m) + (h * s + b) * m
    h = torch.nn.functional.linear(h.flatten(1), state["linear1.weight"], state["linear1.bias"])
    m, s, b = (state[f"linear_masked_relu3.{p}"] for p in ("mask", "slope", "bias"))
    h = h.clamp(min=0) * (1 - m) + (h * s + b) * m
    expected = torch.nn.functional.linear(h, state["linear2.weight"], state["linear2.bias"])
    torch.testing.assert_close(net(x), expected)


def test_masked_relu_with_a_linear_neuron_is_refused() -> None:
    with pytest.raises(ConversionError, match=r"linear_masked_relu2\.mask is non-zero at 1 of 2048 neurons"):
        masked_relu_as_relu(_custom_op_state(mask_value=1.0))


def test_masked_relu_with_infinite_slope_is_refused() -> None:
    with pytest.raises(ConversionError, match=r"linear_masked_relu1\.slope is not finite"):
        masked_relu_as_relu(_custom_op_state(slope_value=float("inf")))


def test_masked_relu_without_its_buffers_is_refused() -> None:
    state = _custom_op_state()
    del state["linear_masked_relu3.bias"]
    with pytest.raises(ConversionError, match=r"no linear_masked_relu3\.bias"):
        masked_relu_as_relu(state)


# ---------------------------------------------------------------- conversion from the upstream files


@needs_checkpoints
@pytest.mark.parametrize("conversion", CONVERSIONS, ids=IDS)
def test_conversion_reproduces_the_committed_bytes(conversion) -> None:
    from tools.convert_checkpoints import convert, sha256_bytes

    data, target, card_sha = convert(conversion, CHECKPOINTS, CARDS)
    assert data == target.read_bytes()
    assert sha256_bytes(data) == card_sha


# ---------------------------------------------------------------- clean accuracy on the first 1,000 test images


def binomial_central_interval(n: int, p: float, level: float) -> tuple[int, int]:
    """The smallest ``[lo, hi]`` with P(X < lo) <= (1 - level)/2 and P(X > hi) <= (1 - level)/2, X ~ Bin(n, p)."""
    tail = (1 - level) / 2
    log_pmf = [
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)
        for k in range(n + 1)
    ]
    pmf = [math.exp(v) for v in log_pmf]
    lo, below = 0, 0.0
    while below + pmf[lo] <= tail:
        below += pmf[lo]
        lo += 1
    hi, above = n, 0.0
    while above + pmf[hi] <= tail:
        above += pmf[hi]
        hi -= 1
    return lo, hi


def test_binomial_interval_against_the_normal_approximation() -> None:
    lo, hi = binomial_central_interval(1000, 0.5, 0.95)
    assert (lo, hi) == (469, 531)  # 500 ± 1.96·√250 = 500 ± 31.0
    lo, hi = binomial_central_interval(1000, 0.9173, 0.999)
    half = 3.29 * math.sqrt(1000 * 0.9173 * 0.0827)
    assert abs(lo - (917.3 - half)) <= 2 and abs(hi - (917.3 + half)) <= 2


@pytest.fixture(scope="module")
def first_1000() -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(TEST_IMAGES) as data:
        x = torch.from_numpy(data["x"]).permute(0, 3, 1, 2).float().div(255)  # uint8 HWC -> [0, 1] CHW
        y = torch.from_numpy(data["y"]).long()
    assert x.shape == (1000, 3, 32, 32) and y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    return x, y


def correct_count(card_id: str, x: torch.Tensor, y: torch.Tensor) -> int:
    wrapper = load_model(load_card(_card_path(card_id))).wrapper
    with torch.no_grad():
        return int(sum(int((wrapper(xb).argmax(1) == yb).sum()) for xb, yb in zip(x.split(250), y.split(250))))


def clean_accuracy_claims(card_id: str) -> list:
    card = load_card(_card_path(card_id)).card
    return [r for r in card.origin.reported if r.metric == "clean accuracy" and r.split == "CIFAR-10 test set"]


# The cards whose upstream states a clean accuracy (the test reads the number from each card).
WITH_CLAIMS = [c for c in IDS if clean_accuracy_claims(c)]


def test_the_cards_state_the_upstream_clean_accuracies() -> None:
    stated = {
        c: [(r.value, r.unit, r.examples) for r in clean_accuracy_claims(c) if r.unit != "fraction"]
        for c in WITH_CLAIMS
    }
    assert stated == {
        "cifar10/akamaster-resnet20": [(91.73, "percent", None)],
        "cifar10/akamaster-resnet56": [(93.39, "percent", None)],
        "cifar10/marabou-small": [(6314, "count", 10000)],
        "cifar10/abcrown-resnet2b-adv": [(69.25, "percent", None)],
        "cifar10/eran-convsmall-pgd": [(630, "count", 1000)],
        "cifar10/abcrown-convsmall-sigmoid": [(63.17, "percent", None)],
        "cifar10/abcrown-cnn-a-wide-adv": [(7338, "count", 10000)],
    }


@needs_images
@pytest.mark.parametrize("card_id", WITH_CLAIMS)
def test_clean_accuracy_meets_the_upstream_figure(card_id: str, first_1000) -> None:
    x, y = first_1000
    correct = correct_count(card_id, x, y)
    for claim in clean_accuracy_claims(card_id):
        if claim.unit == "count" and claim.examples == 1000:
            assert correct == claim.value, (
                f"{card_id}: {correct} of the first 1,000 correct, upstream says {claim.value}"
            )
            continue
        p = {"percent": claim.value / 100, "fraction": claim.value}.get(claim.unit)
        if p is None:
            p = claim.value / claim.examples
        lo, hi = binomial_central_interval(1000, p, 0.999)
        assert lo <= correct <= hi, f"{card_id}: {correct}/1000 correct, outside [{lo}, {hi}] around upstream {p:.4f}"


@needs_images
@pytest.mark.parametrize("card_id", [c for c in IDS if c not in WITH_CLAIMS])
def test_clean_accuracy_without_an_upstream_figure_is_far_above_chance(card_id: str, first_1000) -> None:
    """No upstream number to meet: a model that was converted or normalised wrongly falls to chance (10%)."""
    x, y = first_1000
    correct = correct_count(card_id, x, y)
    assert correct > binomial_central_interval(1000, 0.1, 0.999)[1] * 2, f"{card_id}: {correct}/1000 correct"
