"""``invarbench pack``: the submitter's module:factory -> a .pt2 that loads without their code."""

from __future__ import annotations

import re
import sys
import textwrap

import pytest
import torch
from cards_helpers import TINY_ARCH, TINY_INPUT, card_dict, save_safetensors, sha256_bytes, tiny_model, write_card
from typer.testing import CliRunner

from invarbench.cards.catalog import load_card
from invarbench.cli import app
from invarbench.models.loading import load_model

runner = CliRunner()

FACTORY = textwrap.dedent('''
    """A submitter's own model code: nothing of it may be needed to load the packed file."""
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, classes=3, scale=1.0):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.fc = nn.Linear(2 * 8 * 8, classes)
            self.scale = scale

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).flatten(1)) * self.scale


    def build(classes=3, scale=1.0):
        torch.manual_seed(0)
        return Net(classes, scale)


    def not_a_model():
        return 42
''')


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    """A module 'submitted_net' in tmp_path, importable as 'submitted_net:build'."""
    (tmp_path / "submitted_net.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "submitted_net", raising=False)
    yield tmp_path
    sys.modules.pop("submitted_net", None)


def _reference(**kwargs) -> torch.nn.Module:
    namespace: dict = {}
    exec(compile(FACTORY, "submitted_net.py", "exec"), namespace)  # our own test source
    return namespace["build"](**kwargs).eval()


def test_pack_end_to_end(factory_module, tmp_path, monkeypatch):
    out = tmp_path / "cards" / "mnist5k" / "packed.pt2"
    result = invoke(
        "pack",
        "submitted_net:build",
        "--out",
        out,
        "--input-size",
        1,
        8,
        8,
        "--kwargs",
        "{scale: 2.0}",
        "--num-classes",
        3,
    )
    assert result.exit_code == 0, result.output
    digest = sha256_bytes(out.read_bytes())
    lines = result.stdout.splitlines()
    assert re.fullmatch(
        rf"Wrote {re.escape(str(out))} \([0-9,]+ bytes\): 3 logits for float32 inputs \[1, 8, 8\], "
        r"max \|difference\| to your module \S+",
        lines[0],
    )
    assert lines[1] == f"sha256 {digest}"
    assert lines[2:] == [
        "Card fields (see docs/model-cards.md):",
        "  num_classes: 3",
        "  format: torch-export",
        f"  source: {{path: packed.pt2, sha256: {digest}}}",
        "  preprocessing: {input_size: [1, 8, 8]}",
    ]

    # The submitter's code is gone: the card loads the program alone, at any batch size.
    sys.modules.pop("submitted_net", None)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    (tmp_path / "submitted_net.py").unlink()
    data = card_dict(id="mnist5k/packed", format="torch-export", source={"path": "packed.pt2", "sha256": digest})
    del data["architecture"]
    wrapper = load_model(load_card(write_card(tmp_path / "cards", data))).wrapper
    x = torch.rand(5, *TINY_INPUT)
    with torch.no_grad():
        assert torch.allclose(wrapper(x), _reference(scale=2.0)(x), atol=1e-5, rtol=0)


def test_pack_loads_weights_with_prefixes(factory_module, tmp_path):
    trained = _reference()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)  # different from the factory's initialisation
    weights = tmp_path / "w.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in trained.state_dict().items()}}, weights)
    out = tmp_path / "packed.pt2"
    result = invoke("pack", "submitted_net:build", "--weights", weights, "--out", out, "--input-size", 1, 8, 8)
    assert result.exit_code == 0, result.output
    data = card_dict(
        id="mnist5k/packed",
        format="torch-export",
        source={"path": "packed.pt2", "sha256": sha256_bytes(out.read_bytes())},
    )
    del data["architecture"]
    card_dir = tmp_path / "cards" / "mnist5k"
    card_dir.mkdir(parents=True)
    (card_dir / "packed.pt2").write_bytes(out.read_bytes())
    wrapper = load_model(load_card(write_card(tmp_path / "cards", data))).wrapper
    x = torch.rand(3, *TINY_INPUT)
    with torch.no_grad():
        assert torch.allclose(wrapper(x), trained(x), atol=1e-5, rtol=0)


def test_pack_a_file_path_factory_with_safetensors_weights(tmp_path):
    # A registered architecture as the submitter's code, given as path/to/file.py:factory.
    source = tmp_path / "mine.py"
    source.write_text(
        "from invarbench.models.architectures import build_architecture\n\n"
        f"def make():\n    return build_architecture('lenet', **{TINY_ARCH!r})\n"
    )
    weights = tmp_path / "w.safetensors"
    save_safetensors(tiny_model(), weights)
    out = tmp_path / "m.pt2"
    result = invoke("pack", f"{source}:make", "--weights", weights, "--out", out, "--input-size", 1, 8, 8)
    assert result.exit_code == 0, result.output
    assert f"sha256 {sha256_bytes(out.read_bytes())}" in result.stdout.splitlines()


def test_pack_refuses_a_pickle_it_cannot_read_safely(factory_module, tmp_path):
    from cards_helpers import torch_save_payload

    marker = tmp_path / "unpickled"
    weights = tmp_path / "evil.pt"
    weights.write_bytes(torch_save_payload(marker))
    result = invoke(
        "pack", "submitted_net:build", "--weights", weights, "--out", tmp_path / "m.pt2", "--input-size", 1, 8, 8
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {weights} cannot be read with torch.load(weights_only=True) (")
    assert result.stderr.endswith(
        "): save a plain state dict (torch.save(model.state_dict(), FILE)) or a safetensors file\n"
    )
    assert not marker.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("submitted_net:build", "--num-classes", "10"),
            "Error: the model returns 3 logits per image, not --num-classes 10\n",
        ),
        (("submitted_net:nothing",), "Error: 'submitted_net' has no attribute 'nothing'\n"),
        (("submitted_net:not_a_model",), "Error: 'submitted_net:not_a_model' returned int, not a torch.nn.Module\n"),
        (
            ("no_such_module_xyz:build",),
            "Error: cannot import module 'no_such_module_xyz': No module named 'no_such_module_xyz'\n",
        ),
        (("submitted_net",), "Error: expected MODULE:FACTORY such as 'mynet:build_model', got 'submitted_net'\n"),
        (
            ("submitted_net:build", "--kwargs", "[1, 2]"),
            "Error: --kwargs must be a mapping such as '{depth: 28}', got '[1, 2]'\n",
        ),
    ],
)
def test_pack_errors(factory_module, tmp_path, args, message):
    result = invoke("pack", *args, "--out", tmp_path / "m.pt2", "--input-size", 1, 8, 8)
    assert result.exit_code == 1
    assert result.stderr == message
    assert not (tmp_path / "m.pt2").exists()


def test_pack_needs_a_pt2_name(factory_module, tmp_path):
    result = invoke("pack", "submitted_net:build", "--out", tmp_path / "m.pt", "--input-size", 1, 8, 8)
    assert result.exit_code == 1
    assert result.stderr == f"Error: --out must end in .pt2, got {tmp_path / 'm.pt'}\n"


def test_pack_reports_missing_and_unexpected_keys(factory_module, tmp_path):
    weights = tmp_path / "w.safetensors"
    state = {k: v for k, v in _reference().state_dict().items() if k != "fc.bias"}
    state["extra.weight"] = torch.zeros(1)
    from safetensors.torch import save_file

    save_file(state, str(weights))
    result = invoke(
        "pack", "submitted_net:build", "--weights", weights, "--out", tmp_path / "m.pt2", "--input-size", 1, 8, 8
    )
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {weights}: the weights do not match the architecture (1 missing keys: fc.bias; 1 unexpected keys: "
        "extra.weight). Check architecture.name and its kwargs (e.g. num_classes, depth), or the checkpoint's key "
        "names\n"
    )
