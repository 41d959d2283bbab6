"""The architecture registry: every entry builds and classifies at its input size; checkpoints load by name."""

from __future__ import annotations

import re

import pytest
import torch

from invarbench.errors import NotFoundError, ValidationError
from invarbench.models.architectures import ARCHITECTURES, build_architecture, check_architecture_kwargs, describe
from invarbench.models.loading import load_state_dict_checked, strip_prefixes

# Architectures for MNIST-sized inputs; every other registered one takes CIFAR's 3x32x32.
MNIST_SIZED = {"lenet", "smallcnn", "kw_mnist_cnn", "eran_convsmall", "madry_cnn_tiny_nopool", "colt_convmed"}
MNIST_SIZED |= {"eran_mlp"}
# Cheap enough to run for real on a shared CPU; the others run on the meta device (shapes only).
REAL_FORWARD = {"lenet", "smallcnn", "resnet20"}


def input_size(name: str) -> tuple[int, int, int]:
    return (1, 28, 28) if name in MNIST_SIZED else (3, 32, 32)


@pytest.mark.parametrize("name", ARCHITECTURES.names())
def test_every_architecture_classifies_at_its_input_size(name):
    with torch.device("meta"):  # no memory, no arithmetic: WRN-70-16 costs nothing
        model = build_architecture(name, num_classes=7).eval()
        out = model(torch.empty(2, *input_size(name)))
    assert tuple(out.shape) == (2, 7)
    doc = describe(ARCHITECTURES.get(name))
    assert doc, f"{name} has no description for 'invarbench cards architectures'"
    claimed = re.search(r"([0-9.]+)M parameters", doc)
    if claimed:  # the description's parameter count is the architecture's (with 10 classes)
        with torch.device("meta"):
            params = sum(p.numel() for p in build_architecture(name).parameters())
        decimals = len(claimed.group(1).split(".")[1]) if "." in claimed.group(1) else 0
        assert round(params / 1e6, decimals) == float(claimed.group(1))


@pytest.mark.parametrize("name", sorted(REAL_FORWARD))
def test_real_forward_pass(name):
    torch.manual_seed(0)
    model = build_architecture(name, num_classes=4).eval()
    with torch.no_grad():
        out = model(torch.rand(3, *input_size(name)))
    assert out.shape == (3, 4) and bool(torch.isfinite(out).all())


def test_wrn_70_16_forward_on_one_image():
    torch.manual_seed(0)
    model = build_architecture("wide_resnet70_16").eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 10) and bool(torch.isfinite(out).all())


@pytest.mark.parametrize(
    ("name", "kwargs", "present", "absent"),
    [
        ("preact_resnet18", {}, ["bn.weight", "layer2.0.shortcut.0.weight", "linear.weight"], []),
        ("preact_resnet18", {"final_bn": False}, ["linear.weight"], ["bn.weight"]),
        (
            "wide_resnet28_10",
            {},
            ["block1.layer.0.convShortcut.weight", "bn1.weight", "fc.bias"],
            ["sub_block1.layer.0.bn1.weight"],
        ),
        ("wide_resnet34_10", {"sub_block1": True, "bias_last": False}, ["sub_block1.layer.0.bn1.weight"], ["fc.bias"]),
        ("resnet20", {}, ["layer1.0.conv1.weight", "linear.weight"], ["layer2.0.shortcut.0.weight"]),
        ("resnet20", {"shortcut": "B"}, ["layer2.0.shortcut.0.weight", "layer2.0.shortcut.1.weight"], []),
        ("resnet50", {}, ["layer1.0.conv3.weight", "layer1.0.shortcut.0.weight"], []),
        ("smallcnn", {}, ["feature_extractor.conv4.weight", "classifier.fc3.weight"], []),
    ],
)
def test_checkpoint_names(name, kwargs, present, absent):
    with torch.device("meta"):
        keys = set(build_architecture(name, **kwargs).state_dict())
    assert set(present) <= keys
    assert not set(absent) & keys


def test_preact_shortcut_variants_differ():
    torch.manual_seed(0)
    a = build_architecture("preact_resnet18").eval()
    b = build_architecture("preact_resnet18", shortcut_from="input").eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))


def test_unknown_architecture_suggests_the_near_miss():
    with pytest.raises(NotFoundError) as info:
        build_architecture("preact_resnet_18")
    message = str(info.value)
    assert message.startswith("unknown architecture 'preact_resnet_18'. Did you mean 'preact_resnet18'? Registered: ")
    assert ", ".join(ARCHITECTURES.names()) in message


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        (
            "lenet",
            {"depth": 3},
            "architecture 'lenet' does not accept these arguments: got an unexpected keyword argument 'depth'",
        ),
        (
            "wide_resnet",
            {"depth": 27},
            "architecture 'wide_resnet' does not accept these arguments: depth must be 6n+4 "
            "(16, 22, 28, 34, 40, 70, ...), got 27",
        ),
        (
            "resnet20",
            {"shortcut": "C"},
            "architecture 'resnet20' does not accept these arguments: shortcut must be 'A' "
            "(zero padding) or 'B' (1x1 projection), got 'C'",
        ),
    ],
)
def test_bad_kwargs(name, kwargs, message):
    with pytest.raises(ValidationError) as info:
        build_architecture(name, **kwargs)
    assert str(info.value) == message


def test_kwargs_are_checked_without_building():
    check_architecture_kwargs("wide_resnet70_16", {"num_classes": 100})
    with pytest.raises(ValidationError, match="got an unexpected keyword argument 'widen_factor'"):
        check_architecture_kwargs("wide_resnet70_16", {"widen_factor": 4})


def test_torchvision_namespace():
    with torch.device("meta"):
        model = build_architecture("torchvision/resnet18", num_classes=5)
        assert tuple(model(torch.empty(1, 3, 224, 224)).shape) == (1, 5)
    with pytest.raises(NotFoundError) as info:
        build_architecture("torchvision/resnet_18")
    assert str(info.value).startswith("unknown architecture 'torchvision/resnet_18'. Did you mean 'resnet18'?")
    with pytest.raises(ValidationError) as info:
        build_architecture("torchvision/resnet18", weights="IMAGENET1K_V1")
    assert str(info.value) == (
        "architecture 'torchvision/resnet18': remove weights from its kwargs: the weights come from the card's own file"
    )


def test_timm_namespace():
    from invarbench.models.architectures import timm_models

    if timm_models.available():
        with torch.device("meta"):
            model = build_architecture("timm/resnet18", num_classes=5)
            assert tuple(model(torch.empty(1, 3, 64, 64)).shape) == (1, 5)
        with pytest.raises(ValidationError, match="remove pretrained from its kwargs"):
            build_architecture("timm/resnet18", pretrained=True)
    else:
        with pytest.raises(NotFoundError) as info:
            build_architecture("timm/resnet18")
        assert str(info.value) == "timm architectures need the optional timm package: pip install 'invarbench[timm]'"


# --- loading weights by name -------------------------------------------------------------------


def _state(name: str = "resnet20", seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return build_architecture(name).state_dict()


@pytest.mark.parametrize("prefix", ["module.", "model.", "module.model.", "model.module."])
def test_prefixes_are_stripped(prefix):
    state = _state()
    assert strip_prefixes({prefix + k: v for k, v in state.items()}).keys() == state.keys()
    target = build_architecture("resnet20")
    load_state_dict_checked(target, {prefix + k: v for k, v in state.items()}, "W")
    assert all(torch.equal(target.state_dict()[k], v) for k, v in state.items())


def test_a_prefix_only_some_keys_have_stays():
    state = {"module.a": torch.zeros(1), "b": torch.zeros(1)}
    assert strip_prefixes(state) == state


def test_missing_and_unexpected_keys_are_listed():
    state = _state()
    del state["linear.bias"]
    state["head.weight"] = torch.zeros(1)
    with pytest.raises(ValidationError) as info:
        load_state_dict_checked(build_architecture("resnet20"), state, "W")
    assert str(info.value) == (
        "W: the weights do not match the architecture (1 missing keys: linear.bias; 1 unexpected keys: "
        "head.weight). Check architecture.name and its kwargs (e.g. num_classes, depth), or the checkpoint's key names"
    )


def test_many_missing_keys_are_summarised():
    state = _state("lenet")
    with pytest.raises(ValidationError) as info:
        load_state_dict_checked(build_architecture("resnet20"), state, "W")
    message = str(info.value)
    assert re.search(
        r"\(\d+ missing keys: conv1\.weight, bn1\.weight, bn1\.bias, bn1\.running_mean, "
        r"bn1\.running_var, layer1\.0\.conv1\.weight and \d+ more; 8 unexpected keys: ",
        message,
    )


def test_shape_mismatch_names_both_shapes():
    state = _state()
    state["linear.weight"] = torch.zeros(100, 64)
    state["linear.bias"] = torch.zeros(100)
    with pytest.raises(ValidationError) as info:
        load_state_dict_checked(build_architecture("resnet20"), state, "W")
    assert (
        "(2 keys of another shape: linear.weight (file (100, 64), architecture (10, 64)), linear.bias (file "
        "(100,), architecture (10,)))" in str(info.value)
    )


def test_batch_norm_counters_are_optional():
    state = {k: v for k, v in _state().items() if not k.endswith("num_batches_tracked")}
    load_state_dict_checked(build_architecture("resnet20"), state, "W")


def test_integer_weights_are_refused():
    state = _state("lenet")
    state["classifier.3.bias"] = torch.zeros(10, dtype=torch.int64)
    with pytest.raises(ValidationError) as info:
        load_state_dict_checked(build_architecture("lenet"), state, "W")
    assert str(info.value) == "W: the weights hold integer tensors where the architecture has floats: classifier.3.bias"
