"""The public MNIST checkpoints: cards, converted files and clean accuracy against the upstream's numbers.

Without ``../shared/external`` only the committed files are checked (every card validates and
loads; each conversion has its card, its licence notice and its file). With it, the conversion
reproduces the committed bytes from the upstream files, and each model, loaded and preprocessed
as invarbench does for an evaluation, meets the clean accuracy its upstream reports: exactly where
the upstream gives a count on the first 1,000 test images (ERAN's ``acc`` field), and within the
binomial sampling error (plus the rounding of the printed number) where it gives a percentage.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from invarbench.card_checks import check_card
from invarbench.cards.catalog import card_paths, load_card
from invarbench.cards.schema import ModelCard
from invarbench.models.loading import load_model

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import convert_checkpoints  # noqa: E402
from tools.checkpoints.mnist import CONVERSIONS  # noqa: E402

CARDS = ROOT / "model_cards"
EXTERNAL = ROOT.parent / "shared" / "external"
CHECKPOINTS = EXTERNAL / "checkpoints"
MNIST = EXTERNAL / "mnist"
# Two-sided 99.9 % normal quantile: a card fails only if its accuracy is far from the upstream's.
Z = 3.29

needs_checkpoints = pytest.mark.skipif(not (CHECKPOINTS / "mnist").is_dir(), reason="needs ../shared/external")
needs_mnist = pytest.mark.skipif(
    not (MNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason="needs ../shared/external/mnist"
)


def _ref(card_id: str):
    dataset, name = card_id.split("/")
    return load_card(CARDS / dataset / f"{name}.yaml", check_location=True, cards_dir=CARDS)


def test_every_mnist_card_has_a_conversion_and_every_conversion_its_card():
    cards = {f"mnist/{p.stem}" for p in card_paths(CARDS) if p.parent.name == "mnist"}
    assert cards == {c.card for c in CONVERSIONS}
    assert len(CONVERSIONS) == 11


@pytest.mark.parametrize("conversion", CONVERSIONS, ids=lambda c: c.card)
def test_card_validates_loads_and_names_its_origin(conversion):
    ref = _ref(conversion.card)
    check = check_card(ref.path, cards_dir=CARDS, load=True)
    assert check.ref.card.id == conversion.card
    card: ModelCard = ref.card
    assert card.origin is not None and card.origin.training
    assert (ref.path.parent / conversion.licence).is_file(), "the upstream licence ships beside the weights"
    assert card.license == card.origin.license
    model = load_model(ref).wrapper
    with torch.no_grad():
        logits = model(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10) and bool(torch.isfinite(logits).all())


@needs_checkpoints
def test_conversion_reproduces_the_committed_bytes(tmp_path, capsys):
    # The whole step, as 'python tools/convert_checkpoints.py --check --dataset mnist' runs it.
    assert convert_checkpoints.main(["--check", "--dataset", "mnist", "--source", str(CHECKPOINTS)]) == 0
    out = capsys.readouterr().out
    assert out.count("ok mnist/") == len(CONVERSIONS)
    # And byte for byte here, independently of --check's own comparison.
    for conversion in CONVERSIONS:
        data, target, card_sha = convert_checkpoints.convert(conversion, CHECKPOINTS, CARDS)
        assert data == target.read_bytes()
        assert convert_checkpoints.sha256_bytes(data) == card_sha


@needs_checkpoints
def test_check_mode_reports_a_changed_file(tmp_path, capsys):
    # A copy of the cards folder with one converted file altered: --check names it and fails.
    conversion = CONVERSIONS[-1]
    ref = _ref(conversion.card)
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / ref.path.name).write_bytes(ref.raw)
    (folder / "LICENSES").mkdir()
    licence = ref.path.parent / conversion.licence
    (folder / conversion.licence).write_bytes(licence.read_bytes())
    weights = bytearray((ref.path.parent / ref.card.source.path).read_bytes())
    weights[-1] ^= 1
    (folder / ref.card.source.path).write_bytes(bytes(weights))
    status = convert_checkpoints.run([conversion], CHECKPOINTS, tmp_path, check=True)
    assert status == 1
    assert f"error: {conversion.card}: " in capsys.readouterr().err


@needs_checkpoints
def test_a_wrong_upstream_file_is_refused_before_it_is_read(tmp_path, capsys):
    conversion = CONVERSIONS[0]
    fake = tmp_path / conversion.upstream
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not the upstream file")
    assert convert_checkpoints.run([conversion], tmp_path, CARDS, check=True) == 1
    err = capsys.readouterr().err
    assert "the card's origin.sha256 is" in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def mnist_test():
    from invarbench.data.vision import load_mnist

    images, labels = load_mnist("test", data_dir=MNIST)
    return torch.from_numpy(images).float().div_(255), torch.from_numpy(labels)


def _correct(card_id: str, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-image correctness of the card's model, loaded and preprocessed as an evaluation does."""
    model = load_model(_ref(card_id)).wrapper
    with torch.no_grad():
        predictions = torch.cat([model(images[i : i + 2500]).argmax(1) for i in range(0, len(images), 2500)])
    return predictions == labels


def _clean_claims(card: ModelCard) -> list:
    return [r for r in card.origin.reported if r.metric in ("clean accuracy", "clean error")]


CLAIMED = [c for c in CONVERSIONS if _clean_claims(_ref(c.card).card)]


def test_the_upstream_clean_accuracies_are_on_the_cards():
    assert {c.card for c in CLAIMED} == {
        "mnist/trades-smallcnn",
        "mnist/wong-kolter-cnn",
        "mnist/eran-convsmall",
        "mnist/eran-fc6x100",
        "mnist/eran-fc6x200",
        "mnist/eran-fc9x100",
        "mnist/eran-fc9x200",
    }


@needs_mnist
@pytest.mark.parametrize("conversion", CLAIMED, ids=lambda c: c.card)
def test_clean_accuracy_matches_the_upstream(conversion, mnist_test):
    images, labels = mnist_test
    card = _ref(conversion.card).card
    for claim in _clean_claims(card):
        n = claim.examples
        assert n is not None and n <= len(labels)
        correct = _correct(conversion.card, images[:n], labels[:n])
        if claim.unit == "count":  # ERAN: the number of correct images among the first n, exactly
            assert claim.metric == "clean accuracy"
            assert int(correct.sum()) == int(claim.value)
            continue
        scale = 100.0 if claim.unit == "percent" else 1.0
        stated = claim.value / scale
        accuracy = stated if claim.metric == "clean accuracy" else 1 - stated
        # The printed number's last digit: 99.48 -> +-0.005 %, 1.8 -> +-0.05 %.
        decimals = len(f"{claim.value:g}".partition(".")[2])
        rounding = 0.5 * 10.0**-decimals / scale
        sampling = Z * math.sqrt(accuracy * (1 - accuracy) / n)
        measured = float(correct.float().mean())
        assert abs(measured - accuracy) <= sampling + rounding, (conversion.card, measured, accuracy)
