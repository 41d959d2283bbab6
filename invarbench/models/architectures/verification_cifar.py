"""The small CIFAR-10 networks of the neural-network verification literature.

These are the networks that verifiers (ERAN, OVAL, Marabou, SDP-FO, alpha-beta-CROWN) and
certified-training papers (Wong & Kolter) publish checkpoints of: a few strided convolutions, then
fully connected layers. Their inputs are ``[B, 3, 32, 32]`` images after the card's mean/std
normalisation; their outputs are ``[B, num_classes]`` logits (float32).

The plain conv-then-dense nets are :class:`ConvDense`, an ``nn.Sequential`` whose children are, in
order, each convolution followed by its activation, a flatten (channel-major, as ``nn.Flatten``),
and the linear layers with the activation between them. The parameter names are therefore the
Sequential indices (``0.weight``, ``2.weight``, ``5.weight`` ...), which is how the upstream
checkpoints of these nets name them (alpha-beta-CROWN's ``model_defs.py``, convex_adversarial's
``examples/problems.py``), so that their state dicts load without renaming.

- ``cifar_cnn_a``: convolutions 16 and 32 channels (4x4, stride 2, padding 1), dense 100. SDP-FO's
  "CNN-A" (Dathathri et al., NeurIPS 2020), alpha-beta-CROWN's ``cnn_4layer``/``cifar_model_wide``,
  OVAL's "wide" net and Wong et al.'s CIFAR "small" net (NeurIPS 2018) all have this shape.
- ``cifar_cnn_base``, ``cifar_cnn_deep``: OVAL's "base" (8 and 16 channels) and "deep" (four
  convolutions of 8 channels) nets (Lu & Kumar, ICLR 2020).
- ``cifar_conv_small``: ERAN's ConvSmall (16 and 32 channels, 4x4, stride 2, no padding, dense 100),
  with ReLU or sigmoid activations.
- ``cifar_marabou_small``/``_medium``/``_large``: the VNN-COMP 2021 Marabou CIFAR-10 nets (two
  4x4 stride-2 unpadded convolutions of 8/16, 16/32 or 32/64 channels, dense 128 and 64).
- ``cifar_resnet2b``: alpha-beta-CROWN's ResNet-2b (Wang et al., Beta-CROWN, NeurIPS 2021): a
  stride-2 3x3 stem of 8 channels, two residual blocks of 16 channels without batch norm, dense 100.
  Names as upstream: ``conv1``, ``layer1.0.conv1`` ... ``layer1.0.shortcut.0``, ``linear1``, ``linear2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from invarbench.models.architectures.base import ARCHITECTURES

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}

# (out_channels, kernel, stride, padding) of each convolution
ConvSpec = tuple[int, int, int, int]


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got '{name}'")
    return ACTIVATIONS[name]()


def _conv_side(side: int, kernel: int, stride: int, padding: int) -> int:
    return (side + 2 * padding - kernel) // stride + 1


class ConvDense(nn.Sequential):
    """Convolutions (each followed by the activation), a flatten, then dense layers.

    ``convs`` gives each convolution's ``(out_channels, kernel, stride, padding)``; ``hidden`` the
    widths of the dense layers before the output layer. Input ``[B, in_channels, input_size,
    input_size]`` float, output ``[B, num_classes]``. Children are numbered as in the upstream
    ``nn.Sequential`` definitions (conv, act, ..., flatten, linear, act, ..., linear), so the
    state-dict keys are ``<index>.weight`` / ``<index>.bias``. Raises ``ValueError`` for an unknown
    activation or convolutions that leave no pixels.
    """

    def __init__(
        self,
        convs: Sequence[ConvSpec],
        hidden: Sequence[int],
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
        activation: str = "relu",
    ) -> None:
        layers: list[nn.Module] = []
        channels, side = in_channels, input_size
        for out_channels, kernel, stride, padding in convs:
            layers += [
                nn.Conv2d(channels, out_channels, kernel, stride=stride, padding=padding),
                _activation(activation),
            ]
            channels, side = out_channels, _conv_side(side, kernel, stride, padding)
        if side < 1:
            raise ValueError(f"the convolutions leave no pixels of a {input_size}x{input_size} input")
        layers.append(nn.Flatten())
        width = channels * side * side
        for h in hidden:
            layers += [nn.Linear(width, h), _activation(activation)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)


class _PlainBlock(nn.Module):
    """A residual block of two 3x3 biased convolutions, no batch norm: ``relu(conv2(relu(conv1(x))) + s(x))``.

    The shortcut ``s`` is the identity, or a biased 1x1 convolution (``shortcut.0``) when the stride
    or the channel count changes.
    """

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        return F.relu(out + self.shortcut(x))


class ResNet2b(nn.Module):
    """alpha-beta-CROWN's ResNet-2b (``resnet2b`` in its ``model_defs.py``; Wang et al., NeurIPS 2021).

    ``[B, 3, 32, 32]`` -> 3x3 stride-2 convolution to ``in_planes`` channels (16x16), ReLU -> two
    :class:`_PlainBlock` of ``2 * in_planes`` channels, the first with stride 2 (8x8) -> flatten
    (channel-major) -> dense 100, ReLU -> dense ``num_classes``.
    """

    def __init__(self, num_classes: int = 10, in_planes: int = 8, blocks: int = 2) -> None:
        super().__init__()
        planes = 2 * in_planes
        self.conv1 = nn.Conv2d(3, in_planes, 3, stride=2, padding=1)
        self.layer1 = nn.Sequential(
            *[_PlainBlock(in_planes if i == 0 else planes, planes, 2 if i == 0 else 1) for i in range(blocks)]
        )
        self.linear1 = nn.Linear(planes * 8 * 8, 100)
        self.linear2 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer1(F.relu(self.conv1(x)))
        return self.linear2(F.relu(self.linear1(out.flatten(1))))


@ARCHITECTURES.register("cifar_cnn_a")
def cifar_cnn_a(num_classes: int = 10) -> ConvDense:
    """CNN-A: conv 16-32 (4x4/2, pad 1), dense 100 (0.21M parameters); SDP-FO, OVAL 'wide', Wong et al. 'small'."""
    return ConvDense([(16, 4, 2, 1), (32, 4, 2, 1)], [100], num_classes)


@ARCHITECTURES.register("cifar_cnn_base")
def cifar_cnn_base(num_classes: int = 10) -> ConvDense:
    """OVAL's 'base' CIFAR net: conv 8-16 (4x4/2, pad 1), dense 100, ReLU (0.11M parameters)."""
    return ConvDense([(8, 4, 2, 1), (16, 4, 2, 1)], [100], num_classes)


@ARCHITECTURES.register("cifar_cnn_deep")
def cifar_cnn_deep(num_classes: int = 10) -> ConvDense:
    """OVAL's 'deep' CIFAR net: four conv of 8 channels (4x4/2, 3x3, 3x3, 4x4/2), dense 100, ReLU (0.05M parameters)."""
    return ConvDense([(8, 4, 2, 1), (8, 3, 1, 1), (8, 3, 1, 1), (8, 4, 2, 1)], [100], num_classes)


@ARCHITECTURES.register("cifar_conv_small")
def cifar_conv_small(num_classes: int = 10, activation: str = "relu") -> ConvDense:
    """ERAN's ConvSmall: conv 16-32 (4x4/2, no padding), dense 100; activation relu or sigmoid (0.13M parameters)."""
    return ConvDense([(16, 4, 2, 0), (32, 4, 2, 0)], [100], num_classes, activation=activation)


@ARCHITECTURES.register("cifar_marabou_small")
def cifar_marabou_small(num_classes: int = 10) -> ConvDense:
    """Marabou's small CIFAR net (VNN-COMP 2021): conv 8-16 (4x4/2, unpadded), dense 128-64 (0.09M parameters)."""
    return ConvDense([(8, 4, 2, 0), (16, 4, 2, 0)], [128, 64], num_classes)


@ARCHITECTURES.register("cifar_marabou_medium")
def cifar_marabou_medium(num_classes: int = 10) -> ConvDense:
    """Marabou's medium CIFAR net (VNN-COMP 2021): conv 16-32 (4x4/2, unpadded), dense 128-64 (0.17M parameters)."""
    return ConvDense([(16, 4, 2, 0), (32, 4, 2, 0)], [128, 64], num_classes)


@ARCHITECTURES.register("cifar_marabou_large")
def cifar_marabou_large(num_classes: int = 10) -> ConvDense:
    """Marabou's large CIFAR net (VNN-COMP 2021): conv 32-64 (4x4/2, unpadded), dense 128-64 (0.34M parameters)."""
    return ConvDense([(32, 4, 2, 0), (64, 4, 2, 0)], [128, 64], num_classes)


@ARCHITECTURES.register("cifar_resnet2b")
def cifar_resnet2b(num_classes: int = 10) -> ResNet2b:
    """alpha-beta-CROWN's ResNet-2b: 3x3/2 stem of 8, two residual blocks of 16, no BN, dense 100 (0.11M parameters)."""
    return ResNet2b(num_classes)
