"""The two safe formats: same numbers as the original module, and hostile files refused unrun.

Every hostile file here would, if unpickled or otherwise executed, create ``marker``; each test
asserts its own refusal message and that the marker does not exist.
"""

from __future__ import annotations

import json

import pytest
import torch
from cards_helpers import (
    TINY_INPUT,
    card_dict,
    edit_json,
    edit_program,
    pickle_payload,
    rewrite_pt2,
    safetensors_bytes,
    tiny_model,
    tiny_pt2_bytes,
    torch_save_payload,
    write_card,
)

from invarbench.cards.catalog import load_card
from invarbench.errors import ModelOutputError, NotFoundError, ValidationError
from invarbench.models.loading import load_model

INPUT_SIZE_HINT = "): check preprocessing.input_size in the card, or what the model's forward raises on such an input"

WHERE = "model card CARD"
REFUSED = (
    "was refused as a torch.export program: {}. Nothing was loaded or run. Re-create it with 'invarbench pack' "
    "(see docs/model-cards.md)."
)


def export_card(**overrides) -> dict:
    data = card_dict(format="torch-export", source={"path": "model.pt2", "sha256": "0" * 64}, **overrides)
    del data["architecture"]
    return data


def local_ref(tmp_path, data: dict, model_bytes: bytes):
    return load_card(write_card(tmp_path, data, model_bytes))


def error_of(ref, kind=ValidationError) -> str:
    with pytest.raises(kind) as info:
        load_model(ref)
    return str(info.value).replace(f"model card {ref.path}", WHERE)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "unpickled"
    yield path
    assert not path.exists(), "a submitted file ran code"


# --- the same numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 7])
def test_torch_export_matches_the_original_module(tmp_path, batch):
    wrapper = load_model(local_ref(tmp_path, export_card(), tiny_pt2_bytes())).wrapper
    original = tiny_model()
    x = torch.rand(batch, *TINY_INPUT)  # a batch size other than the traced one: the batch dimension is dynamic
    with torch.no_grad():
        assert torch.allclose(wrapper(x), original(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("prefix", ["", "module.", "model.", "module.model."])
def test_safetensors_matches_the_original_module(tmp_path, prefix):
    wrapper = load_model(local_ref(tmp_path, card_dict(), safetensors_bytes(tiny_model(), prefix))).wrapper
    x = torch.rand(5, *TINY_INPUT)
    with torch.no_grad():
        assert torch.equal(wrapper(x), tiny_model()(x))


def test_both_formats_agree_with_normalisation(tmp_path):
    pre = {"input_size": list(TINY_INPUT), "mean": [0.25], "std": [0.5]}
    a = load_model(local_ref(tmp_path / "a", export_card(preprocessing=pre), tiny_pt2_bytes())).wrapper
    b = load_model(local_ref(tmp_path / "b", card_dict(preprocessing=pre), safetensors_bytes(tiny_model()))).wrapper
    x = torch.rand(4, *TINY_INPUT)
    with torch.no_grad():
        expected = tiny_model()((x - 0.25) / 0.5)
        assert torch.allclose(a(x), expected, atol=1e-6, rtol=0)
        assert torch.allclose(b(x), expected, atol=1e-6, rtol=0)


# --- refusals ------------------------------------------------------------------------------------


def test_local_checksum_mismatch(tmp_path):
    path = write_card(tmp_path, card_dict(), safetensors_bytes(tiny_model()))
    text = path.read_text()
    actual = load_card(path).card.source.sha256
    path.write_text(text.replace(actual, "ab" * 32))
    ref = load_card(path)
    assert error_of(ref) == (
        f"{WHERE}: checksum mismatch for tiny.safetensors: the card says sha256 {'ab' * 32}, the file has {actual}. "
        "The file is not the one the card registered; nothing was loaded."
    )


def test_missing_local_file(tmp_path):
    path = write_card(tmp_path, card_dict())
    ref = load_card(path)
    assert error_of(ref, NotFoundError) == f"{WHERE}: model file not found: {path.parent / 'tiny.safetensors'}"


def test_local_file_symlinked_out_of_the_card_folder(tmp_path):
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(safetensors_bytes(tiny_model()))
    path = write_card(tmp_path / "cards", card_dict())
    (path.parent / "tiny.safetensors").symlink_to(outside)
    ref = load_card(path)
    assert error_of(ref) == f"{WHERE}: source.path must stay inside the card's folder (it resolves to {outside})"


def test_unknown_architecture_on_load(tmp_path):
    data = card_dict(architecture={"name": "wide_resnet28_1O", "kwargs": {}})
    ref = local_ref(tmp_path, data, safetensors_bytes(tiny_model()))
    message = error_of(ref, NotFoundError)
    assert message.startswith("unknown architecture 'wide_resnet28_1O'. Did you mean 'wide_resnet28_10'? Registered: ")
    assert message.endswith(
        "also 'torchvision/<model>' and 'timm/<model>' (run 'invarbench cards architectures' to list them all)."
    )


def test_wrong_number_of_classes_is_caught_at_load(tmp_path):
    ref = local_ref(tmp_path, export_card(num_classes=10), tiny_pt2_bytes())
    assert error_of(ref, ModelOutputError) == (
        f"{WHERE}: the model returns [2, 3] for a batch of 2 inputs of size [1, 8, 8]; expected [2, 10] logits: "
        "check num_classes and the architecture's kwargs in the card"
    )


def test_wrong_input_size_is_caught_at_load(tmp_path):
    ref = local_ref(tmp_path, export_card(preprocessing={"input_size": [1, 16, 16]}), tiny_pt2_bytes())
    message = error_of(ref, ModelOutputError)
    assert message.startswith(f"{WHERE}: the model fails on a batch of 2 mid-grey inputs of size [1, 16, 16] (")
    assert message.endswith(
        "): check preprocessing.input_size in the card, or what the model's forward raises on such an input"
    )


def test_pickle_named_safetensors(tmp_path, marker):
    ref = local_ref(tmp_path, card_dict(), pickle_payload(marker))
    assert error_of(ref) == (
        f"{WHERE}: tiny.safetensors is a pickle, not a safetensors file: invarbench never unpickles a submitted "
        "file. Convert the state dict with safetensors.torch.save_file, or use 'invarbench pack'"
    )


def test_torch_save_checkpoint_named_safetensors(tmp_path, marker):
    ref = local_ref(tmp_path, card_dict(), torch_save_payload(marker))
    assert error_of(ref) == (
        f"{WHERE}: tiny.safetensors is a zip archive (torch.save writes those around a pickle), not a safetensors "
        "file: invarbench never unpickles a submitted file. Convert the state dict with "
        "safetensors.torch.save_file, or use 'invarbench pack'"
    )


def test_garbage_named_safetensors(tmp_path):
    ref = local_ref(tmp_path, card_dict(), b"\x00" * 64)
    assert error_of(ref).startswith(f"{WHERE}: tiny.safetensors is not a valid safetensors file (")


def _add(name: str, content: bytes):
    def apply(entries: dict[str, bytes]) -> None:
        entries[name] = content

    return apply


def _first_node_target(target: str):
    def apply(program: dict) -> None:
        program["graph_module"]["graph"]["nodes"][0]["target"] = target

    return apply


def _replace_expr(payload: str):
    """Put ``payload`` where the program holds its first symbolic shape expression."""

    def apply(program: dict) -> None:
        def walk(value: object) -> bool:
            if isinstance(value, dict):
                for key in value:
                    if key == "expr_str":
                        value[key] = payload
                        return True
                    if walk(value[key]):
                        return True
            elif isinstance(value, list):
                return any(walk(v) for v in value)
            return False

        assert walk(program), "the program has no symbolic shape expression"

    return apply


def _pickled_weights(config: dict) -> None:
    for meta in config["config"].values():
        meta["use_pickle"] = True


def _weight_payload_name(name: str):
    def apply(config: dict) -> None:
        next(iter(config["config"].values()))["path_name"] = name

    return apply


def _hostile_pt2(marker) -> dict[str, tuple[bytes, str]]:
    pt2 = tiny_pt2_bytes()
    command = f"__import__('os').system('touch {marker}')"
    return {
        "torch.save checkpoint": (
            torch_save_payload(marker),
            "it is a torch.save checkpoint (a pickle), not a torch.export program",
        ),
        "plain pickle": (
            pickle_payload(marker),
            "it is not a zip archive; a .pt2 file is written by torch.export.save",
        ),
        "extra pickle entry": (
            rewrite_pt2(pt2, _add("data/extra.pkl", pickle_payload(marker))),
            "it contains a pickled file (data/extra.pkl), which invarbench never unpickles",
        ),
        "pickled sample inputs": (
            rewrite_pt2(pt2, _add("data/sample_inputs/model.pt", torch_save_payload(marker))),
            "its sample inputs are not plain tensors (they would be unpickled)",
        ),
        "pickled weights": (
            rewrite_pt2(pt2, edit_json("data/weights/model_weights_config.json", _pickled_weights)),
            "the tensor features.0.weight is stored as a pickle, which invarbench never unpickles",
        ),
        "custom object payload": (
            rewrite_pt2(pt2, edit_json("data/weights/model_weights_config.json", _weight_payload_name("custom_obj_0"))),
            "the payload 'custom_obj_0' of features.0.weight is not a plain tensor (custom and opaque objects would "
            "be unpickled)",
        ),
        "compiled code": (
            rewrite_pt2(pt2, _add("data/aotinductor/model/model.so", b"\x7fELF")),
            "it contains compiled code (data/aotinductor/model/model.so), which invarbench never loads",
        ),
        "custom operator": (
            rewrite_pt2(pt2, edit_program(_first_node_target("torch.ops.evil.run.default"))),
            "the program calls 'torch.ops.evil.run.default'; only aten/prims tensor operators and "
            "symbolic-shape helpers are allowed (no custom operators)",
        ),
        "file operator": (
            rewrite_pt2(pt2, edit_program(_first_node_target("torch.ops.aten.from_file.default"))),
            "the program calls torch.ops.aten.from_file.default, an operator with side effects",
        ),
        "code in a shape": (
            rewrite_pt2(pt2, edit_program(_replace_expr(command))),
            f"the symbolic shape expression {command[:80]!r} calls something other than sympy",
        ),
        "guard code": (
            rewrite_pt2(pt2, edit_program(lambda p: p.__setitem__("guards_code", ["import os"]))),
            "the program carries guard code, which would be compiled and run",
        ),
        "traversal entry": (
            rewrite_pt2(pt2, _add("../../evil.py", b"x")),
            "the archive entry 'x/../../evil.py' is not a plain file path",
        ),
    }


HOSTILE = list(_hostile_pt2("m"))


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_pt2_is_refused_and_nothing_runs(tmp_path, marker, case):
    data, reason = _hostile_pt2(marker)[case]
    ref = local_ref(tmp_path, export_card(), data)
    message = error_of(ref)
    if case == "traversal entry":  # the archive's top folder name is torch's choice
        assert message.startswith(f"{WHERE}: model.pt2 was refused as a torch.export program: the archive entry '")
        assert message.endswith(
            "/../../evil.py' is not a plain file path. Nothing was loaded or run. Re-create it "
            "with 'invarbench pack' (see docs/model-cards.md)."
        )
    else:
        assert message == f"{WHERE}: model.pt2 {REFUSED.format(reason)}"


def test_an_untouched_rewrite_still_loads(tmp_path):
    # The hostile cases above are edits of this archive: unedited, it must load (the refusals are the edits').
    data = rewrite_pt2(tiny_pt2_bytes(), lambda entries: None)
    wrapper = load_model(local_ref(tmp_path, export_card(), data)).wrapper
    x = torch.rand(2, *TINY_INPUT)
    with torch.no_grad():
        assert torch.allclose(wrapper(x), tiny_model()(x), atol=1e-6, rtol=0)


def test_node_metadata_never_reaches_the_loader(tmp_path, monkeypatch):
    # Stack traces and annotations are free text that torch may put into generated code: dropped.
    def poison(program: dict) -> None:
        for node in program["graph_module"]["graph"]["nodes"]:
            node["metadata"] = {"stack_trace": "__import__('os').system('echo pwned')", "custom": "{}"}

    data = rewrite_pt2(tiny_pt2_bytes(), edit_program(poison))
    seen = []
    import torch.export as torch_export

    real = torch_export.load

    def spy(path, *args, **kwargs):
        import zipfile

        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("models/model.json"))
            seen.append(json.loads(archive.read(name)))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(torch_export, "load", spy)
    load_model(local_ref(tmp_path, export_card(), data))
    nodes = seen[0]["graph_module"]["graph"]["nodes"]
    assert nodes and all(node["metadata"] == {} for node in nodes)
