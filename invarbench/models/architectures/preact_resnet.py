"""Pre-activation ResNet-18 (He et al., 2016, "Identity mappings") for 32x32 inputs.

The standard network of fast and "overfitting in adversarial training" experiments (Wong et
al., 2020; Rice et al., 2020) and of many RobustBench CIFAR entries. Parameter names match
those checkpoints: ``conv1``, ``layer1.0.bn1``, ``layer1.0.conv1``, ``layer1.0.bn2``,
``layer1.0.conv2``, ``layer2.0.shortcut.0`` (1x1 projection), ``bn`` (the final batch norm),
``linear``.

Two details vary between public implementations and are kwargs: ``final_bn`` (a BN-ReLU
before pooling, ``bn``; Wong/Rice et al.: yes, RobustBench's plain ``PreActResNet18()``: no)
and ``shortcut_from`` (the projection shortcut reads the block's first activation,
``"activation"``, as in Wong/Rice et al. and RobustBench's ``PreActBlockV2``, or its raw
input, ``"input"``, as in RobustBench's ``PreActBlock``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from invarbench.models.architectures.base import ARCHITECTURES


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice; the projection shortcut (if any) takes the first activation."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut_from: str = "activation") -> None:
        super().__init__()
        self.shortcut_from_input = shortcut_from == "input"
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.has_projection = stride != 1 or in_planes != planes
        if self.has_projection:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = self.shortcut(x if self.shortcut_from_input else out) if self.has_projection else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class PreActResNet(nn.Module):
    def __init__(
        self,
        num_blocks: tuple[int, int, int, int],
        num_classes: int = 10,
        in_channels: int = 3,
        final_bn: bool = True,
        shortcut_from: str = "activation",
    ) -> None:
        super().__init__()
        if shortcut_from not in ("activation", "input"):
            raise ValueError(f"shortcut_from must be 'activation' or 'input', got '{shortcut_from}'")
        self.shortcut_from = shortcut_from
        self.final_bn = final_bn
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = self._stage(64, num_blocks[0], 1)
        self.layer2 = self._stage(128, num_blocks[1], 2)
        self.layer3 = self._stage(256, num_blocks[2], 2)
        self.layer4 = self._stage(512, num_blocks[3], 2)
        if final_bn:
            self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def _stage(self, planes: int, count: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (count - 1):
            layers.append(PreActBlock(self.in_planes, planes, s, self.shortcut_from))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if self.final_bn:
            out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


@ARCHITECTURES.register("preact_resnet18")
def preact_resnet18(
    num_classes: int = 10, in_channels: int = 3, final_bn: bool = True, shortcut_from: str = "activation"
) -> PreActResNet:
    """Pre-activation ResNet-18 (11.2M parameters); Wong/Rice et al. and RobustBench checkpoint names."""
    return PreActResNet((2, 2, 2, 2), num_classes, in_channels, final_bn, shortcut_from)
