"""Wide ResNets (Zagoruyko & Komodakis, 2016) for 32x32 inputs: WRN-28-10, WRN-34-10, WRN-70-16.

The architecture of Madry et al.'s and TRADES' CIFAR-10 models and of most RobustBench entries
that use the classic implementation. Parameter names match those checkpoints: ``conv1``,
``block1.layer.0.bn1``, ``block1.layer.0.conv1``, ``block1.layer.0.bn2``,
``block1.layer.0.conv2``, ``block1.layer.0.convShortcut`` (1x1 projection where the width
changes), ``block2``, ``block3``, ``bn1`` (final batch norm), ``fc``. TRADES' checkpoints also
hold an unused ``sub_block1``: set ``sub_block1: true`` to accept them unchanged; some
RobustBench entries have no bias in ``fc``: ``bias_last: false``.

Not covered: the DeepMind-style WRN of Gowal et al./Rebuffi et al. (``init_conv``,
``batchnorm``, ``logits``, Swish, normalisation inside the network) uses other names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from invarbench.models.architectures.base import ARCHITECTURES


class WideBasicBlock(nn.Module):
    """BN-ReLU-conv twice; where the width or stride changes the shortcut is a 1x1 convolution
    of the first activation (``convShortcut``), otherwise the identity of the input."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes and stride == 1
        if not self.equal_in_out:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(act)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        skip = x if self.equal_in_out else self.convShortcut(act)
        return skip + out


class NetworkBlock(nn.Module):
    def __init__(self, count: int, in_planes: int, out_planes: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *[
                WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, drop_rate)
                for i in range(count)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(
        self,
        depth: int = 28,
        widen_factor: int = 10,
        num_classes: int = 10,
        drop_rate: float = 0.0,
        sub_block1: bool = False,
        in_channels: int = 3,
        bias_last: bool = True,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"depth must be 6n+4 (16, 22, 28, 34, 40, 70, ...), got {depth}")
        if widen_factor < 1:
            raise ValueError(f"widen_factor must be a positive integer, got {widen_factor}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1, drop_rate)
        if sub_block1:  # present (unused) in TRADES' checkpoints
            self.sub_block1 = NetworkBlock(n, widths[0], widths[1], 1, drop_rate)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2, drop_rate)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=False)
        self.fc = nn.Linear(widths[3], num_classes, bias=bias_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.block3(self.block2(self.block1(out)))
        out = self.relu(self.bn1(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


@ARCHITECTURES.register("wide_resnet")
def wide_resnet(
    depth: int = 28,
    widen_factor: int = 10,
    num_classes: int = 10,
    sub_block1: bool = False,
    in_channels: int = 3,
    bias_last: bool = True,
) -> WideResNet:
    """WRN-depth-widen_factor (depth 6n+4); TRADES/RobustBench checkpoint names."""
    return WideResNet(depth, widen_factor, num_classes, 0.0, sub_block1, in_channels, bias_last)


@ARCHITECTURES.register("wide_resnet28_10")
def wide_resnet28_10(num_classes: int = 10, sub_block1: bool = False, bias_last: bool = True) -> WideResNet:
    """WRN-28-10 (36.5M parameters); TRADES/RobustBench checkpoint names."""
    return WideResNet(28, 10, num_classes, 0.0, sub_block1, 3, bias_last)


@ARCHITECTURES.register("wide_resnet34_10")
def wide_resnet34_10(num_classes: int = 10, sub_block1: bool = False, bias_last: bool = True) -> WideResNet:
    """WRN-34-10 (46.2M parameters): Madry et al.'s and TRADES' CIFAR-10 network."""
    return WideResNet(34, 10, num_classes, 0.0, sub_block1, 3, bias_last)


@ARCHITECTURES.register("wide_resnet70_16")
def wide_resnet70_16(num_classes: int = 10, sub_block1: bool = False, bias_last: bool = True) -> WideResNet:
    """WRN-70-16 (267M parameters), classic naming (not the DeepMind-style variant)."""
    return WideResNet(70, 16, num_classes, 0.0, sub_block1, 3, bias_last)
