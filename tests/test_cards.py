"""Model cards: the schema's errors (file, field, fix), safe YAML, locations, and the 'cards' commands."""

from __future__ import annotations

import re

import pytest
import yaml
from cards_helpers import (
    REPO_ID,
    REVISION,
    card_dict,
    mnist_card_dict,
    mnist_model,
    safetensors_bytes,
    sha256_bytes,
    write_card,
)
from typer.testing import CliRunner

from invarbench.cards.catalog import MAX_CARD_BYTES, card_paths, load_card, resolve_card
from invarbench.cli import app
from invarbench.errors import NotFoundError, ValidationError

runner = CliRunner()
ZERO = "0" * 64
PLAIN_NAMES = (
    "must be a relative path of plain names (letters, digits, '_', '-', '.', '+'; no '..', leading '/' or hidden parts)"
)


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def card_error(tmp_path, data: dict) -> str:
    """The message that loading ``data`` as a card fails with, with the card's path as ``CARD``."""
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ValidationError) as info:
        load_card(path)
    return str(info.value).replace(str(path), "CARD")


# --- the schema --------------------------------------------------------------------------------


def test_a_valid_card_loads_with_its_fields(tmp_path):
    path = write_card(tmp_path, card_dict(training={"method": "pgd-at", "norm": "linf", "epsilon": "8/255"}))
    ref = load_card(path)
    assert ref.card.id == "mnist5k/tiny"
    assert ref.card.model_name == "tiny"
    assert ref.card.training.eps == pytest.approx(8 / 255)
    assert ref.sha256 == sha256_bytes(path.read_bytes())
    assert ref.folder == tmp_path / "mnist5k"


SCHEMA_ERRORS = {
    "id traversal": (
        {"id": "../evil"},
        "id: id must be '<dataset>/<name>' in lowercase letters, digits, '.', '_' or '-' (no '..'), got '../evil'",
    ),
    "id traversal inside": (
        {"id": "mnist5k/../../etc"},
        "id: id must be '<dataset>/<name>' in lowercase letters, digits, '.', '_' or '-' (no '..'), "
        "got 'mnist5k/../../etc'",
    ),
    "id dot dot name": (
        {"id": "mnist5k/a..b"},
        "id: id must be '<dataset>/<name>' in lowercase letters, digits, '.', '_' or '-' (no '..'), got 'mnist5k/a..b'",
    ),
    "id of another dataset": ({"dataset": "cifar10"}, "id: id 'mnist5k/tiny' must start with its dataset 'cifar10/'"),
    "path traversal": (
        {"source": {"path": "../../secret.safetensors", "sha256": ZERO}},
        f"source.path: path {PLAIN_NAMES}, got '../../secret.safetensors'",
    ),
    "absolute path": (
        {"source": {"path": "/etc/x.safetensors", "sha256": ZERO}},
        f"source.path: path {PLAIN_NAMES}, got '/etc/x.safetensors'",
    ),
    "hidden path": (
        {"source": {"path": ".x.safetensors", "sha256": ZERO}},
        f"source.path: path {PLAIN_NAMES}, got '.x.safetensors'",
    ),
    "hub file traversal": (
        {
            "source": {
                "hub": {"repo_id": REPO_ID, "revision": REVISION, "file": "../../../x.safetensors", "sha256": ZERO}
            }
        },
        f"source.hub.file: file {PLAIN_NAMES}, got '../../../x.safetensors'",
    ),
    "hub repo traversal": (
        {"source": {"hub": {"repo_id": "../x", "revision": REVISION, "file": "x.safetensors", "sha256": ZERO}}},
        "source.hub.repo_id: repo_id must look like 'org/name' (letters, digits, '.', '_', '-'), got '../x'",
    ),
    "branch as revision": (
        {"source": {"hub": {"repo_id": REPO_ID, "revision": "main", "file": "x.safetensors", "sha256": ZERO}}},
        "source.hub.revision: revision must be a full 40-character lowercase commit hash, not a branch or tag "
        "(copy it from the repository's commit history on the Hub), got 'main'",
    ),
    "both sources": (
        {
            "source": {
                "hub": {"repo_id": REPO_ID, "revision": REVISION, "file": "x.safetensors", "sha256": ZERO},
                "path": "x.safetensors",
            }
        },
        "source: give exactly one of 'hub' (a Hub repository) or 'path' (a file next to the card)",
    ),
    "path without checksum": (
        {"source": {"path": "x.safetensors"}},
        "source: a local 'path' needs its 'sha256' next to it (sha256sum FILE)",
    ),
    "bad checksum": (
        {"source": {"path": "x.safetensors", "sha256": "ABC"}},
        "source.sha256: sha256 must be the 64 lowercase hex characters of the file's sha256 (sha256sum FILE, "
        "or 'invarbench cards new' computes it), got 'ABC'",
    ),
    "pickled checkpoint": (
        {"source": {"path": "model.pth", "sha256": ZERO}},
        "source.path: 'model.pth' looks like a pickled checkpoint, which invarbench never loads: save the weights "
        "with safetensors (format safetensors) or run 'invarbench pack' (format torch-export)",
    ),
    "suffix of another format": (
        {"source": {"path": "model.pt2", "sha256": ZERO}},
        "source.path: format 'safetensors' needs a '.safetensors' file, got 'model.pt2'",
    ),
    "unknown format": ({"format": "onnx"}, "format: unknown model format 'onnx'. Known: safetensors, torch-export"),
    "safetensors without architecture": (
        {"architecture": None},
        "architecture: format 'safetensors' needs an 'architecture' (name and kwargs)",
    ),
    "export with architecture": (
        {"format": "torch-export", "source": {"path": "x.pt2", "sha256": ZERO}},
        "architecture: format 'torch-export' carries its own graph: remove 'architecture'",
    ),
    "misspelt field": (
        {"preprocesing": {"input_size": [1, 8, 8]}},
        "preprocesing: unknown field. Did you mean 'preprocessing'? (see docs/model-cards.md)",
    ),
    "adversarial without threat model": (
        {"training": {"method": "pgd-at"}},
        "training: method 'pgd-at' needs the training threat model: norm (linf or l2) and eps",
    ),
    "eps on the 255 scale": (
        {"training": {"method": "trades", "norm": "linf", "eps": 8}},
        "training: eps is on the [0, 1] pixel scale: write 8/255 (0.0314), not 8; got 8.0",
    ),
    "standard with eps": (
        {"training": {"method": "standard", "eps": "8/255"}},
        "training: method 'standard' has no threat model: remove norm and eps",
    ),
    "other without notes": (
        {"training": {"method": "other"}},
        "notes: training method 'other' needs 'notes' that describe the method",
    ),
    "mean without std": (
        {"preprocessing": {"input_size": [1, 8, 8], "mean": [0.5]}},
        "preprocessing: give both mean and std (one value per channel), or neither",
    ),
    "mean per channel": (
        {"preprocessing": {"input_size": [1, 8, 8], "mean": [0.5, 0.5], "std": [1, 1]}},
        "preprocessing: mean needs one value per channel: input_size has 1 channels, mean has 2",
    ),
    "schema version": (
        {"schema_version": 2},
        "schema_version: this invarbench reads card schema version 1, the card says 2: upgrade invarbench or "
        "write a version-1 card",
    ),
    "paper url": (
        {"paper": {"title": "T", "url": "ftp://x"}},
        "paper.url: url must start with http:// or https://, got 'ftp://x'",
    ),
}


@pytest.mark.parametrize("case", SCHEMA_ERRORS, ids=list(SCHEMA_ERRORS))
def test_schema_errors_name_the_file_the_field_and_the_fix(tmp_path, case):
    overrides, message = SCHEMA_ERRORS[case]
    data = card_dict(**overrides)
    if data.get("architecture") is None:
        data.pop("architecture", None)
    assert card_error(tmp_path, data) == f"invalid model card CARD: {message}"


def test_missing_fields_are_each_named(tmp_path):
    data = card_dict()
    del data["license"], data["training"]
    assert card_error(tmp_path, data) == (
        "invalid model card CARD: training: required field is missing (see docs/model-cards.md); "
        "license: required field is missing (see docs/model-cards.md)"
    )


def test_python_yaml_tags_are_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "card.yaml"
    path.write_text(f"id: !!python/object/apply:os.system ['touch {marker}']\nname: x\n")
    with pytest.raises(ValidationError) as info:
        load_card(path)
    assert str(info.value) == (
        f"invalid YAML in model card {path} (line 1, column 5): the tag '!!python/object/apply:os.system' is not "
        "allowed: model cards hold plain values only (no !!python/... or other tags)"
    )
    assert not marker.exists()


def test_duplicate_keys_are_refused(tmp_path):
    # A reviewer reads the first value, a plain YAML loader keeps the last: both must not differ silently.
    path = tmp_path / "card.yaml"
    path.write_text("id: mnist5k/a\nid: mnist5k/b\n")
    with pytest.raises(ValidationError) as info:
        load_card(path)
    assert str(info.value) == (
        f"invalid YAML in model card {path} (line 2, column 1): the key 'id' appears twice (keep one)"
    )


@pytest.mark.parametrize(("text", "got"), [("", "an empty file"), ("- 1\n- 2\n", "list")])
def test_a_card_must_be_a_mapping(tmp_path, text, got):
    path = tmp_path / "card.yaml"
    path.write_text(text)
    with pytest.raises(ValidationError) as info:
        load_card(path)
    assert str(info.value) == f"invalid model card {path}: expected a mapping of fields, got {got}"


def test_oversized_card_is_refused_before_parsing(tmp_path):
    path = tmp_path / "card.yaml"
    path.write_text("notes: " + "x" * MAX_CARD_BYTES + "\n")
    with pytest.raises(ValidationError, match=r"is 65,544 bytes; a card is at most 65,536 bytes$"):
        load_card(path)


def test_card_location_must_match_its_id(tmp_path):
    path = tmp_path / "elsewhere" / "other.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(card_dict()))
    with pytest.raises(ValidationError) as info:
        load_card(path, check_location=True, cards_dir=tmp_path)
    assert str(info.value) == (
        f"model card {path} has id 'mnist5k/tiny', so it must live at {tmp_path.resolve() / 'mnist5k' / 'tiny.yaml'}"
    )


# --- finding cards -----------------------------------------------------------------------------


def test_resolve_by_id_by_path_and_near_miss(tmp_path):
    path = write_card(tmp_path, card_dict())
    assert resolve_card("mnist5k/tiny", tmp_path).path == path
    assert resolve_card(str(path), tmp_path).card.id == "mnist5k/tiny"
    assert card_paths(tmp_path) == [path]
    with pytest.raises(NotFoundError) as info:
        resolve_card("mnist5k/tiyn", tmp_path)
    assert str(info.value) == "unknown model 'mnist5k/tiyn'. Did you mean 'mnist5k/tiny'?"


@pytest.mark.parametrize("model", ["mnist5k/../mnist5k/tiny", "../cards/mnist5k/tiny", "mnist5k/..", "/mnist5k/tiny"])
def test_ids_never_leave_the_cards_folder(tmp_path, model):
    cards = tmp_path / "cards"
    write_card(cards, card_dict())
    with pytest.raises(NotFoundError, match=r"^unknown model "):
        resolve_card(model, cards)


# --- the commands ------------------------------------------------------------------------------


@pytest.fixture
def cards(tmp_path):
    """A cards folder with one valid mnist5k card and its weights."""
    root = tmp_path / "cards"
    path = write_card(root, mnist_card_dict("good"), safetensors_bytes(mnist_model()))
    return root, path


def test_cards_list(cards):
    root, _ = cards
    write_card(
        root,
        mnist_card_dict(
            "robust",
            training={"method": "pgd-at", "norm": "linf", "eps": 0.3},
            source={"path": "good.safetensors", "sha256": ZERO},
        ),
    )
    result = invoke("cards", "list", "--cards-dir", root)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "mnist5k/" in line]
    assert len(rows) == 2
    assert "mnist5k/good" in rows[0] and "standard" in rows[0]
    assert "mnist5k/robust" in rows[1] and "pgd-at" in rows[1] and "linf 0.3" in rows[1]


def test_cards_list_reports_a_broken_card_and_fails(cards):
    root, _ = cards
    (root / "mnist5k" / "broken.yaml").write_text("id: mnist5k/broken\n")
    result = invoke("cards", "list", "--cards-dir", root)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: invalid model card {root / 'mnist5k' / 'broken.yaml'}: ")
    assert "mnist5k/good" in result.stdout


def test_cards_list_on_an_empty_folder(tmp_path):
    result = invoke("cards", "list", "--cards-dir", tmp_path)
    assert result.exit_code == 0
    assert result.stdout == f"No model cards in {tmp_path}. Create one with 'invarbench cards new'.\n"


def test_cards_show(cards):
    root, path = cards
    result = invoke("cards", "show", "mnist5k/good", "--cards-dir", root)
    assert result.exit_code == 0, result.output
    header, *body = result.stdout.splitlines()
    assert header == f"# {path}  (card sha256 {sha256_bytes(path.read_bytes())})"
    shown = yaml.safe_load("\n".join(body))
    assert shown["id"] == "mnist5k/good"
    assert shown["source"] == yaml.safe_load(path.read_text())["source"]


def test_cards_show_unknown_id(cards):
    root, _ = cards
    result = invoke("cards", "show", "mnist5k/god", "--cards-dir", root)
    assert result.exit_code == 1
    assert result.stderr == "Error: unknown model 'mnist5k/god'. Did you mean 'mnist5k/good'?\n"


def test_cards_validate_good_card(cards):
    root, path = cards
    result = invoke("cards", "validate", "--cards-dir", root)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"ok  {path}  (mnist5k/good)\n1 card(s) valid.\n"
    loaded = invoke("cards", "validate", path, "--load", "--cards-dir", root)
    assert loaded.exit_code == 0, loaded.output


def test_cards_validate_wrong_checksum(cards):
    root, path = cards
    bad = write_card(root, mnist_card_dict("bad", source={"path": "good.safetensors", "sha256": "1" * 64}))
    actual = sha256_bytes((root / "mnist5k" / "good.safetensors").read_bytes())
    result = invoke("cards", "validate", "--cards-dir", root)
    assert result.exit_code == 1
    assert result.stdout == f"ok  {path}  (mnist5k/good)\n"
    assert result.stderr == (
        f"Error: model card {bad}: checksum mismatch for good.safetensors: the card says sha256 {'1' * 64}, the "
        f"file has {actual}. The file is not the one the card registered; nothing was loaded.\n"
        "1 of 2 card(s) failed.\n"
    )


def test_cards_validate_checks_the_data_set(cards):
    root, _ = cards
    bad = write_card(root, mnist_card_dict("five", num_classes=5, source={"path": "good.safetensors", "sha256": ZERO}))
    result = invoke("cards", "validate", bad, "--cards-dir", root)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: model card {bad}: num_classes is 5, but data set 'mnist5k' has 10 classes\n1 of 1 card(s) failed.\n"
    )


def test_cards_validate_unknown_architecture(cards):
    root, _ = cards
    bad = write_card(root, mnist_card_dict("arch", architecture={"name": "lenett", "kwargs": {}}))
    result = invoke("cards", "validate", bad, "--cards-dir", root)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: model card {bad}: unknown architecture 'lenett'. Did you mean 'lenet'? Registered: "
    )


def test_cards_validate_wrong_place(cards, tmp_path):
    _, path = cards
    moved = tmp_path / "good.yaml"
    moved.write_text(path.read_text())
    result = invoke("cards", "validate", moved)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: model card {moved} has id 'mnist5k/good', so it must be named mnist5k/good.yaml "
        "(model_cards/<dataset>/<name>.yaml)\n1 of 1 card(s) failed.\n"
    )


def test_cards_validate_notes_an_uncached_hub_file(cards):
    root, _ = cards
    hub = {"hub": {"repo_id": REPO_ID, "revision": REVISION, "file": "w.safetensors", "sha256": ZERO}}
    path = write_card(root, mnist_card_dict("remote", source=hub))
    result = invoke("cards", "validate", path, "--cards-dir", root)
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"ok  {path}  (mnist5k/remote)\n    note: w.safetensors of {REPO_ID}@{REVISION[:12]} is not in the local "
        "Hub cache: not checksummed (use --load)\n1 card(s) valid.\n"
    )


def test_cards_new_computes_the_checksum_and_validates(cards):
    root, _ = cards
    weights = root / "mnist5k" / "good.safetensors"
    result = invoke(
        "cards",
        "new",
        "--id",
        "mnist5k/fresh",
        "--name",
        "Fresh",
        "--file",
        weights,
        "--architecture",
        "lenet",
        "--training",
        "pgd-at",
        "--norm",
        "linf",
        "--eps",
        "3/10",
        "--license",
        "MIT",
        "--submitted-by",
        "me",
        "--no-input",
        "--cards-dir",
        root,
    )
    assert result.exit_code == 0, result.output
    target = root / "mnist5k" / "fresh.yaml"
    assert result.stdout == f"Wrote {target}\nNext: invarbench cards validate {target} --load\n"
    data = yaml.safe_load(target.read_text())
    assert data["source"] == {"path": "good.safetensors", "sha256": sha256_bytes(weights.read_bytes())}
    # --no-input takes the class count and image size from the registered data set
    assert data["num_classes"] == 10 and data["preprocessing"] == {"input_size": [1, 28, 28]}
    assert data["training"] == {"method": "pgd-at", "norm": "linf", "eps": "3/10"}
    assert load_card(target).card.training.eps == pytest.approx(0.3)
    check = invoke("cards", "validate", target, "--load", "--cards-dir", root)
    assert check.exit_code == 0, check.output

    again = invoke(
        "cards",
        "new",
        "--id",
        "mnist5k/fresh",
        "--file",
        weights,
        "--architecture",
        "lenet",
        "--license",
        "MIT",
        "--submitted-by",
        "me",
        "--no-input",
        "--cards-dir",
        root,
    )
    assert again.exit_code == 1
    assert again.stderr == f"Error: {target} exists: pass --force to overwrite it\n"


def test_cards_new_for_a_hub_file_prints_the_card(tmp_path):
    weights = tmp_path / "w.pt2"
    weights.write_bytes(b"stand-in bytes")
    result = invoke(
        "cards",
        "new",
        "--id",
        "cifar10/x",
        "--name",
        "X",
        "--file",
        weights,
        "--hub-repo",
        REPO_ID,
        "--hub-revision",
        REVISION,
        "--num-classes",
        "10",
        "--input-size",
        "3,32,32",
        "--mean",
        "0.5,0.5,0.5",
        "--std",
        "0.25,0.25,0.25",
        "--license",
        "MIT",
        "--submitted-by",
        "me",
        "--no-input",
        "--out",
        "-",
        "--cards-dir",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.stdout)
    assert data["source"] == {
        "hub": {"repo_id": REPO_ID, "revision": REVISION, "file": "w.pt2", "sha256": sha256_bytes(b"stand-in bytes")}
    }
    assert data["format"] == "torch-export" and "architecture" not in data
    assert data["preprocessing"] == {"mean": [0.5] * 3, "std": [0.25] * 3, "input_size": [3, 32, 32]}
    assert not (tmp_path / "cifar10").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "Error: --license is required (or run without --no-input to be asked)\n"),
        (
            ("--license", "MIT", "--submitted-by", "me"),
            "Error: give the model file with --file (a local file next to the card, or with --hub-repo)\n",
        ),
    ],
)
def test_cards_new_without_prompts_names_the_missing_flag(tmp_path, extra, message):
    result = invoke("cards", "new", "--id", "mnist5k/x", "--no-input", "--cards-dir", tmp_path, *extra)
    assert result.exit_code == 1
    assert result.stderr == message


def test_cards_new_refuses_a_pickled_checkpoint(tmp_path):
    ckpt = tmp_path / "mnist5k" / "model.pth"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"x")
    result = invoke(
        "cards",
        "new",
        "--id",
        "mnist5k/x",
        "--file",
        ckpt,
        "--license",
        "MIT",
        "--submitted-by",
        "me",
        "--no-input",
        "--cards-dir",
        tmp_path,
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: cannot tell the format of 'model.pth': give --format, and use a .safetensors or .pt2 file "
        "(pickled checkpoints are never loaded; 'invarbench pack' makes a .pt2)\n"
    )


def test_cards_architectures_lists_the_registry():
    result = invoke("cards", "architectures")
    assert result.exit_code == 0
    for name in ("lenet", "smallcnn", "preact_resnet18", "wide_resnet28_10", "resnet20"):
        assert re.search(rf"\b{name}\b", result.stdout), name


def test_normalisation_on_the_0_255_scale_is_refused(tmp_path):
    data = card_dict(preprocessing={"input_size": [1, 8, 8], "mean": [33.0], "std": [78.0]})
    path = write_card(tmp_path / "cards", data, b"x")
    with pytest.raises(ValidationError, match=r"must be on the \[0, 1\] scale of the images"):
        load_card(path)
