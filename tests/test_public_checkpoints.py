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
import yaml

from invarbench.card_checks import check_card
from invarbench.cards.catalog import card_from_data, card_paths, load_card
from invarbench.cards.schema import ModelCard
from invarbench.errors import InvarbenchError
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


def _card_data(card_id: str) -> dict:
    return yaml.safe_load(_ref(card_id).raw)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o.update(commit="f94f414"), "origin.commit: commit must be the full 40-character"),
        (lambda o: o.update(repository="github.com/x/y"), "origin.repository: repository must be"),
        (lambda o: o.update(sha256="5b99"), "origin.sha256: sha256 must be the 64 lowercase hex"),
        (lambda o: o.update(path="../x.pt"), "origin.path: path must be a relative path"),
        (lambda o: o.update(training=""), "origin.training: String should have at least 1 character"),
        (lambda o: o["paper"].update(url="ftp://x"), "origin.paper.url: url must start with http"),
        (lambda o: o["reported"][0].update(value=100.5), "must lie in [0, 100.0], got 100.5"),
        (lambda o: o["reported"][0].update(unit="count", value=994, examples=None), "a count needs 'examples'"),
        (lambda o: o["reported"][0].update(unit="count", value=994.5, examples=1000), "a whole number of at most"),
        (lambda o: o["reported"][0].update(unit="count", value=1001, examples=1000), "a whole number of at most"),
        (lambda o: o["reported"][0].update(value=float("nan")), "origin.reported.0.value"),
        (lambda o: o["reported"][0].pop("where"), "origin.reported.0.where: required field is missing"),
    ],
)
def test_origin_refuses_what_it_cannot_vouch_for(change, message, tmp_path):
    data = _card_data("mnist/trades-smallcnn")
    change(data["origin"])
    with pytest.raises(InvarbenchError) as info:
        card_from_data(data, tmp_path / "card.yaml")
    assert message in str(info.value)


def test_an_unstated_training_threat_model_is_null_on_a_card_with_an_origin(tmp_path):
    data = _card_data("mnist/sdp-cnn-a-adv")
    data["training"] = {"method": "pgd-at", "norm": "linf", "epsilon": None}
    card = card_from_data(data, tmp_path / "card.yaml")
    assert card.training.eps is None and card.training.norm == "linf"
    # Left out rather than written as null: still the error every submitter gets.
    data["training"] = {"method": "pgd-at", "norm": "linf"}
    with pytest.raises(InvarbenchError, match="needs the training threat model"):
        card_from_data(data, tmp_path / "card.yaml")
    # Without an origin, null is no way out of stating the threat model.
    data["training"] = {"method": "certified", "norm": None, "eps": 0.1}
    del data["origin"]
    with pytest.raises(InvarbenchError, match=r"training\.norm is null: only a card with an 'origin'"):
        card_from_data(data, tmp_path / "card.yaml")
    # 'adversarial' (the attack not stated upstream) only on a public checkpoint's card: a submitter names it.
    data["training"] = {"method": "adversarial", "norm": "linf", "eps": 0.1}
    with pytest.raises(
        InvarbenchError, match=r"training method 'adversarial' \(the attack not stated\) is for a public"
    ):
        card_from_data(data, tmp_path / "card.yaml")


def test_cards_show_prints_the_origin_and_the_unstated_eps(tmp_path):
    from typer.testing import CliRunner

    from invarbench.cli.app import app

    data = _card_data("mnist/sdp-cnn-a-adv")
    data["training"] = {"method": "pgd-at", "norm": "linf", "eps": None}
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "sdp-cnn-a-adv.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(app, ["cards", "show", str(folder / "sdp-cnn-a-adv.yaml")])
    assert result.exit_code == 0, result.output
    assert "# upstream: https://github.com/Verified-Intelligence/alpha-beta-CROWN at 8250d5fbd530, " in result.output
    shown = yaml.safe_load(result.output)
    assert shown["training"] == {"method": "pgd-at", "norm": "linf", "eps": None}
    assert shown["origin"]["sha256"] == "3a1dbfc656e45be2cf6e8ae709c43da0fa0f3b71762c8a0842df72868f2b3459"
