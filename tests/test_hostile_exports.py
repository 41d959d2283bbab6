"""Programs and modules that are not hostile but wrong: each gets one line naming the problem and the fix.

- a ``.pt2`` exported for a fixed (or bounded) batch size, which used to pass the load check and
  fail deep inside an evaluation;
- a ``.pt2`` exported in training mode (batch norm on batch statistics, active dropout);
- ``invarbench pack`` of a module whose import, factory or forward raises;
- half-precision models, which ``invarbench pack`` exports in their own dtype.
"""

from __future__ import annotations

import io
import sys
import textwrap

import pytest
import torch
from cards_helpers import (
    MNIST_INPUT,
    TINY_INPUT,
    card_dict,
    mnist_card_dict,
    mnist_model,
    sha256_bytes,
    write_card,
)
from torch import nn
from typer.testing import CliRunner

from invarbench.cards.catalog import load_card
from invarbench.cli import app
from invarbench.errors import ModelOutputError, ValidationError
from invarbench.models.loading import load_model
from invarbench.models.safe_export import ExportedModule, load_exported_module
from invarbench.models.wrapper import ModelWrapper

INPUT_SIZE_HINT = "): check preprocessing.input_size in the card, or what the model's forward raises on such an input"

runner = CliRunner()
WHERE = "model card CARD"
REFUSED = (
    "model.pt2 was refused as a torch.export program: {}. Nothing was loaded or run. Re-create it with "
    "'invarbench pack' (see docs/model-cards.md)."
)
DYNAMIC_FIX = (
    "re-export it with a dynamic batch dimension: torch.export.export(model, (x,), "
    "dynamic_shapes=({0: torch.export.Dim('batch')},))"
)
EVAL_FIX = "call model.eval() before torch.export.export ('invarbench pack' does)"


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def export_bytes(model: nn.Module, example: torch.Tensor, dynamic_shapes=None, *, decompose: bool = False) -> bytes:
    program = torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes)
    if decompose:
        program = program.run_decompositions()
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def dynamic(**bounds: int):
    return ({0: torch.export.Dim("batch", **bounds)},)


def export_card(**overrides) -> dict:
    data = card_dict(format="torch-export", source={"path": "model.pt2", "sha256": "0" * 64}, **overrides)
    del data["architecture"]
    return data


def load_error(tmp_path, model_bytes: bytes, kind=ValidationError, **card) -> str:
    ref = load_card(write_card(tmp_path, export_card(**card), model_bytes))
    with pytest.raises(kind) as info:
        load_model(ref)
    message = str(info.value)
    assert "\n" not in message
    return message.replace(f"model card {ref.path}", WHERE)


def load_ok(tmp_path, model_bytes: bytes, **card) -> ModelWrapper:
    return load_model(load_card(write_card(tmp_path, export_card(**card), model_bytes))).wrapper


class ConvNet(nn.Module):
    """A small classifier with batch norm and dropout, on 1x8x8 images (TINY_INPUT), 3 classes."""

    def __init__(self, *, dropout: float = 0.5, batch_norm: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4) if batch_norm else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * 8 * 8, 3)
        if batch_norm:  # running statistics unlike a batch's own, so that the two modes differ
            self.norm.running_mean.fill_(0.3)
            self.norm.running_var.fill_(2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(torch.relu(self.norm(self.conv(x)))).flatten(1))


def tiny_batch(n: int = 2) -> torch.Tensor:
    return torch.rand(n, *TINY_INPUT)


# --- 1. the batch dimension ----------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_a_program_exported_for_a_fixed_batch_size_is_refused_at_load(tmp_path, batch):
    data = export_bytes(ConvNet().eval(), tiny_batch(batch))
    assert load_error(tmp_path, data) == f"{WHERE}: " + REFUSED.format(
        f"it was exported for a fixed batch size of {batch} (its input's first dimension is not dynamic), but "
        f"invarbench runs batches of any size; {DYNAMIC_FIX}"
    )


@pytest.mark.parametrize(("bounds", "span"), [({"min": 1, "max": 4}, "from 1 to 4"), ({"min": 3}, "of at least 3")])
def test_a_bounded_batch_dimension_is_refused_at_load(tmp_path, bounds, span):
    data = export_bytes(ConvNet().eval(), tiny_batch(4), dynamic(**bounds))
    assert load_error(tmp_path, data) == f"{WHERE}: " + REFUSED.format(
        f"its batch dimension only takes sizes {span}, but invarbench runs batches of any size; {DYNAMIC_FIX} "
        "without min or max"
    )


@pytest.mark.parametrize(
    "dims",
    [
        {0: torch.export.Dim("batch")},
        {0: torch.export.Dim("batch", min=2)},
        {0: torch.export.Dim.AUTO},
        {0: torch.export.Dim.DYNAMIC},
    ],
)
def test_every_unbounded_batch_dimension_loads(tmp_path, dims):
    wrapper = load_ok(tmp_path, export_bytes(ConvNet().eval(), tiny_batch(2), (dims,)))
    x = tiny_batch(7)
    with torch.no_grad():
        assert torch.allclose(wrapper(x), ConvNet().eval()(x), atol=1e-5, rtol=0)


def test_cards_validate_load_refuses_a_fixed_batch_program_in_one_line(tmp_path):
    data = export_bytes(mnist_model().eval(), torch.rand(2, *MNIST_INPUT))
    card = mnist_card_dict("fixed", format="torch-export", source={"path": "fixed.pt2", "sha256": "0" * 64})
    del card["architecture"]
    path = write_card(tmp_path / "cards", card, data)
    result = invoke("cards", "validate", path, "--load", "--cards-dir", tmp_path / "cards")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: model card {path}: fixed.pt2 was refused as a torch.export program: it was exported for a fixed "
        f"batch size of 2 (its input's first dimension is not dynamic), but invarbench runs batches of any size; "
        f"{DYNAMIC_FIX}. Nothing was loaded or run. Re-create it with 'invarbench pack' (see docs/model-cards.md).\n"
        "1 of 1 card(s) failed.\n"
    )
    assert "Traceback" not in result.output


class EvenBatches(nn.Module):
    """Pairs images up: runs on batches of 4, 6, 8, ... only, which no static check sees."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(2 * 64, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.reshape(-1, 2 * 64)).reshape(-1, 3)


def test_a_program_whose_guards_restrict_the_batch_size_is_refused_at_load(tmp_path):
    data = export_bytes(EvenBatches().eval(), tiny_batch(6), ({0: torch.export.Dim.AUTO},))
    assert load_error(tmp_path, data) == f"{WHERE}: " + REFUSED.format(
        "the program carries guard code, which would be compiled and run; its guards restrict the batch size "
        "(such as \"((64*L['x'].size()[0]) % 128) == 0\"), but invarbench runs batches of any size: keep the "
        f"forward from depending on the batch size and {DYNAMIC_FIX}"
    )


class OnlyBatch(nn.Module):
    """Fails, as a fixed-batch program's guard does, at every batch size but ``size``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.fc = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.size:
            raise AssertionError(f"Guard failed: x.size()[0] == {self.size}")
        return self.fc(x.flatten(1))


@pytest.mark.parametrize(("size", "works", "fails"), [(2, "2", "1 or 3"), (1, "1", "2 or 3"), (3, "3", "1 or 2")])
def test_the_load_check_probes_several_batch_sizes(size, works, fails):
    wrapper = ModelWrapper(OnlyBatch(size), num_classes=3, input_shape=TINY_INPUT)
    with pytest.raises(ModelOutputError) as info:
        wrapper.check_output_shape(where="W")
    assert str(info.value) == (
        f"W: the model runs on a batch of {works} inputs but fails on a batch of {fails} inputs of size [1, 8, 8] "
        f"(AssertionError: Guard failed: x.size()[0] == {size}): it was exported for a fixed batch size, but "
        "invarbench runs batches of any size. Re-export it with a dynamic batch dimension, torch.export.export(model, "
        "(x,), dynamic_shapes=({0: torch.export.Dim('batch')},)), or with 'invarbench pack', which does"
    )


class Squeezed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)).squeeze()


def test_logits_whose_shape_depends_on_the_batch_size():
    with pytest.raises(ModelOutputError) as info:
        ModelWrapper(Squeezed(), num_classes=3, input_shape=TINY_INPUT).check_output_shape()
    assert str(info.value) == (
        "the model returns [3] for a batch of 1 inputs of size [1, 8, 8] but [2, 3] for a batch of 2: the logits "
        "must be [batch, 3] at every batch size (a squeeze() or a fixed reshape in the forward?)"
    )


def test_a_model_that_fails_at_every_size_still_points_at_the_input_size():
    wrapper = ModelWrapper(Squeezed(), num_classes=3, input_shape=[1, 4, 4])
    with pytest.raises(ModelOutputError) as info:
        wrapper.check_output_shape(where="W")
    assert str(info.value).startswith(
        "W: the model fails on a batch of 2 mid-grey inputs of size [1, 4, 4] (RuntimeError: "
    )
    assert str(info.value).endswith(
        "): check preprocessing.input_size in the card, or what the model's forward raises on such an input"
    )


MALFORMED = "is not of the form torch.export.save writes ({} while checking it)"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda program: program["graph_module"].__setitem__("graph", 1),
            "was refused as a torch.export program: its program (models/model.json) "
            f"{MALFORMED.format('AttributeError')}",
        ),
        (
            lambda program: program["graph_module"]["module_call_graph"].__setitem__(0, "x"),
            "was refused as a torch.export program: the program has no root module signature",
        ),
        (
            lambda program: program["graph_module"]["signature"]["input_specs"][-1]["user_input"].__setitem__(
                "arg", ["as_tensor"]
            ),
            "could not be loaded as a torch.export program (AssertionError: ",
        ),
    ],
    ids=["graph", "module-call-graph", "user-input"],
)
def test_a_malformed_program_is_one_line_not_a_traceback(tmp_path, edit, expected):
    from cards_helpers import edit_program, rewrite_pt2, tiny_pt2_bytes

    message = load_error(tmp_path, rewrite_pt2(tiny_pt2_bytes(), edit_program(edit)))
    assert message.startswith(f"{WHERE}: model.pt2 {expected}")


# --- 3. training mode ----------------------------------------------------------------------------

BATCH_NORM = "batch norm uses the statistics of each batch instead of its running statistics"


def dropout2d() -> nn.Module:
    return nn.Sequential(nn.Dropout2d(0.2), nn.Flatten(), nn.Linear(64, 3))


def rrelu() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.RReLU())


def instance_norm() -> nn.Module:
    """Batch statistics by design, in eval mode too: not a training-mode export."""
    return nn.Sequential(
        nn.InstanceNorm2d(1), nn.BatchNorm2d(1, track_running_stats=False), nn.Flatten(), nn.Linear(64, 3)
    )


@pytest.mark.parametrize(
    ("build", "decompose", "reason"),
    [
        (lambda: ConvNet(dropout=0.0), False, f"{BATCH_NORM} (torch.ops.aten.batch_norm.default)"),
        (
            lambda: ConvNet(dropout=0.0),
            True,
            f"{BATCH_NORM} (torch.ops.aten._native_batch_norm_legit_functional.default)",
        ),
        (lambda: ConvNet(), False, f"{BATCH_NORM} (torch.ops.aten.batch_norm.default)"),
        (lambda: ConvNet(batch_norm=False), False, "dropout is active (torch.ops.aten.dropout.default)"),
        (lambda: ConvNet(batch_norm=False), True, "dropout is active (torch.ops.aten.native_dropout.default)"),
        (dropout2d, False, "dropout is active (torch.ops.aten.feature_dropout.default)"),
        (dropout2d, True, "dropout draws random masks (torch.ops.aten.bernoulli.p)"),
        (rrelu, False, "RReLU draws random slopes (torch.ops.aten.rrelu.default)"),
    ],
    ids=[
        "batchnorm",
        "batchnorm-decomposed",
        "batchnorm+dropout",
        "dropout",
        "dropout-decomposed",
        "dropout2d",
        "dropout2d-decomposed",
        "rrelu",
    ],
)
def test_a_program_exported_in_training_mode_is_refused_at_load(tmp_path, build, decompose, reason):
    data = export_bytes(build().train(), tiny_batch(), dynamic(min=1), decompose=decompose)
    assert load_error(tmp_path, data) == f"{WHERE}: " + REFUSED.format(
        f"it was exported in training mode: {reason}; {EVAL_FIX}"
    )


@pytest.mark.parametrize("decompose", [False, True])
@pytest.mark.parametrize(
    "build",
    [
        ConvNet,
        lambda: ConvNet(batch_norm=False),
        lambda: ConvNet(dropout=0.0),
        dropout2d,
        rrelu,
        instance_norm,
    ],
    ids=["batchnorm+dropout", "dropout", "batchnorm", "dropout2d", "rrelu", "instancenorm"],
)
def test_the_same_models_exported_in_eval_mode_load(tmp_path, build, decompose):
    model = build().eval()
    wrapper = load_ok(tmp_path, export_bytes(model, tiny_batch(), dynamic(min=1), decompose=decompose))
    x = tiny_batch(5)
    with torch.no_grad():
        assert torch.allclose(wrapper(x), model(x), atol=1e-5, rtol=0)


def test_dropout_with_p_zero_in_training_mode_is_harmless(tmp_path):
    model = ConvNet(batch_norm=False, dropout=0.0).train()
    wrapper = load_ok(tmp_path, export_bytes(model, tiny_batch(), dynamic(min=1)))
    x = tiny_batch(3)
    with torch.no_grad():
        assert torch.allclose(wrapper(x), model(x), atol=1e-5, rtol=0)


# --- 2 and 4. invarbench pack ---------------------------------------------------------------------

FACTORIES = textwrap.dedent('''
    """A submitter's model code, with the faults a submitter's code has."""
    import torch
    from torch import nn


    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 3)

        def forward(self, x):
            raise RuntimeError("boom")


    class ShapeBug(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(100, 3)

        def forward(self, x):
            return self.fc(x.flatten(1))


    class Chatty(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 3)

        def forward(self, x):
            raise ValueError("line one\\n" + "x" * 1000)


    class Net(nn.Module):
        """Batch norm and dropout, returned in training mode: pack must put it in eval mode."""

        def __init__(self, classes=3):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.norm = nn.BatchNorm2d(4)
            self.drop = nn.Dropout(0.5)
            self.fc = nn.Linear(4 * 8 * 8, classes)
            self.norm.running_mean.fill_(0.3)
            self.norm.running_var.fill_(2.0)

        def forward(self, x):
            return self.fc(self.drop(torch.relu(self.norm(self.conv(x)))).flatten(1))


    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc1 = nn.Linear(64, 16)
            self.fc2 = nn.Linear(16, 3)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x.flatten(1))))


    def boom():
        return Boom()


    def shape_bug():
        return ShapeBug()


    def chatty():
        return Chatty()


    def broken_factory():
        raise ValueError("no such depth")


    def build(classes=3):
        return Net(classes)


    def training_mode():
        return Net().train()


    def bfloat16():
        return Net().to(torch.bfloat16)


    def half():
        return Net().half()


    def half_mlp():
        return Mlp().half()


    def double():
        return Net().double()
''')


@pytest.fixture
def hostile_net(tmp_path, monkeypatch):
    """Modules 'hostile_net' (the factories above), 'raises_on_import' and 'exits_on_import' in tmp_path."""
    (tmp_path / "hostile_net.py").write_text(FACTORIES)
    (tmp_path / "raises_on_import.py").write_text("import torch\n\nSCALE = 1 / 0\n")
    (tmp_path / "exits_on_import.py").write_text("import sys\n\nsys.exit(2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    names = ("hostile_net", "raises_on_import", "exits_on_import")
    for name in names:
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield tmp_path
    for name in names:
        sys.modules.pop(name, None)


def pack(spec: str, out, *args: object):
    return invoke("pack", spec, "--out", out, "--input-size", 1, 8, 8, *args)


def assert_one_line_failure(result, out) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert not out.exists()
    return result.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "hostile_net:boom",
            (
                "Error: the model of 'hostile_net:boom' fails on a batch of 3 random float32 images of size [1, 8, 8] "
                "(RuntimeError: boom): check --input-size, and that the forward takes one image batch "
                "and returns one logits "
                "tensor\n"
            ),
        ),
        (
            "hostile_net:broken_factory",
            "Error: 'hostile_net:broken_factory' failed to build the model (ValueError: no such depth): "
            "fix the factory\n",
        ),
        (
            "raises_on_import:build",
            "Error: importing 'raises_on_import' failed (ZeroDivisionError: division by zero)\n",
        ),
        (
            "exits_on_import:build",
            (
                "Error: importing 'exits_on_import' called sys.exit(2): put its script code under "
                "'if __name__ == \"__main__\":'\n"
            ),
        ),
    ],
)
def test_pack_reports_the_submitters_own_errors_in_one_line(hostile_net, tmp_path, spec, message):
    out = tmp_path / "m.pt2"
    assert assert_one_line_failure(pack(spec, out), out) == message


def test_pack_reports_a_shape_bug_in_the_forward(hostile_net, tmp_path):
    out = tmp_path / "m.pt2"
    message = assert_one_line_failure(pack("hostile_net:shape_bug", out), out)
    assert message.startswith(
        "Error: the model of 'hostile_net:shape_bug' fails on a batch of 3 random float32 "
        "images of size [1, 8, 8] (RuntimeError: mat1 and mat2 shapes cannot be multiplied"
    )


def test_pack_shortens_a_long_error(hostile_net, tmp_path):
    out = tmp_path / "m.pt2"
    message = assert_one_line_failure(pack("hostile_net:chatty", out), out)
    assert f"(ValueError: line one {'x' * (297 - len('line one '))}...): check --input-size" in message


def test_pack_names_the_kwargs_when_the_factory_rejects_them(hostile_net, tmp_path):
    out = tmp_path / "m.pt2"
    message = assert_one_line_failure(pack("hostile_net:build", out, "--kwargs", "{clases: 3}"), out)
    assert message == (
        "Error: 'hostile_net:build' failed to build the model (TypeError: build() got an unexpected "
        "keyword argument 'clases'): fix the factory or its --kwargs\n"
    )


def test_pack_exports_a_module_returned_in_training_mode_in_eval_mode(hostile_net, tmp_path):
    out = tmp_path / "cards" / "mnist5k" / "model.pt2"
    result = pack("hostile_net:training_mode", out)
    assert result.exit_code == 0, result.output
    wrapper = load_ok(tmp_path / "cards", out.read_bytes())
    namespace: dict = {}
    exec(compile(FACTORIES, "hostile_net.py", "exec"), namespace)  # our own test source
    x = tiny_batch(5)
    with torch.no_grad():
        assert torch.allclose(wrapper(x), namespace["build"]().eval()(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("factory", "dtype"),
    [
        ("bfloat16", torch.bfloat16),
        ("half", torch.float16),
        ("half_mlp", torch.float16),
        ("double", torch.float64),
    ],
)
def test_pack_exports_a_model_in_its_own_dtype(hostile_net, tmp_path, factory, dtype):
    out = tmp_path / "cards" / "mnist5k" / "model.pt2"
    result = pack(f"hostile_net:{factory}", out)
    assert result.exit_code == 0, result.output
    name = str(dtype).removeprefix("torch.")
    assert f": 3 logits for {name} inputs [1, 8, 8], max |difference| to your module " in result.stdout.splitlines()[0]
    assert f"sha256 {sha256_bytes(out.read_bytes())}" in result.stdout.splitlines()

    module = load_exported_module(out, "W", 1 << 24)
    assert isinstance(module, ExportedModule)
    assert module.input_dtype == dtype

    # Through a card: the wrapper casts its float32 images in [0, 1] to the model's dtype.
    wrapper = load_ok(tmp_path / "cards", out.read_bytes())
    namespace: dict = {}
    exec(compile(FACTORIES, "hostile_net.py", "exec"), namespace)  # our own test source
    reference = namespace[factory]().eval()
    x = tiny_batch(5)
    with torch.no_grad():
        logits = wrapper(x)
        expected = reference(x.to(dtype))
    assert logits.shape == (5, 3) and logits.is_floating_point()
    assert torch.allclose(logits.to(dtype), expected, atol=0, rtol=0)


def test_a_program_that_takes_integer_inputs_is_refused(tmp_path):
    class Bytes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.flatten(1).float() / 255)

    data = export_bytes(Bytes().eval(), torch.zeros(2, *TINY_INPUT, dtype=torch.uint8), dynamic(min=1))
    assert load_error(tmp_path, data) == (
        f"{WHERE}: model.pt2 takes uint8 inputs, but invarbench feeds it images as floating-point values in [0, 1]: "
        "export the model with a floating-point example input such as torch.rand(2, C, H, W), and do any scaling "
        "inside the model"
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_the_load_check_accepts_half_precision_models(dtype):
    model = ConvNet().to(dtype).eval()
    ModelWrapper(model, num_classes=3, input_shape=TINY_INPUT).check_output_shape()
