"""ResNets for 32x32 inputs (CIFAR-10/100).

- ``resnet18``, ``resnet34``, ``resnet50``: the CIFAR adaptation of He et al. (2016) with a 3x3
  stem and no max-pool, four stages of 64-512 channels. Parameter names match the widely used
  CIFAR implementations (``conv1``, ``bn1``, ``layer1.0.conv1`` ..., ``shortcut.0``/``shortcut.1``
  for the projection, ``linear``), i.e. the ResNet-18/50 checkpoints of RobustBench's CIFAR zoo
  and of most adversarial-training repositories.
- ``resnet20`` ... ``resnet56``: He et al.'s own CIFAR ResNets (6n+2 layers, 16-32-64
  channels). The default shortcut is the paper's option A (stride-2 subsampling plus zero
  channel padding, no parameters); ``shortcut: B`` uses 1x1 projections. Names: ``conv1``,
  ``bn1``, ``layer1.0.conv1`` ..., ``linear``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from invarbench.models.architectures.base import ARCHITECTURES


def _conv3x3(in_planes: int, planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _projection(in_planes: int, planes: int, stride: int) -> nn.Sequential:
    """1x1 convolution + batch norm; an empty Sequential (identity) when shapes already agree."""
    if stride == 1 and in_planes == planes:
        return nn.Sequential()
    return nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _projection(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.shortcut = _projection(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet with a 3x3 stem for 32x32 inputs: four stages of 64, 128, 256, 512 channels."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        num_blocks: tuple[int, int, int, int],
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.in_planes = 64
        self.conv1 = _conv3x3(in_channels, 64)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._stage(block, 64, num_blocks[0], 1)
        self.layer2 = self._stage(block, 128, num_blocks[1], 2)
        self.layer3 = self._stage(block, 256, num_blocks[2], 2)
        self.layer4 = self._stage(block, 512, num_blocks[3], 2)
        self.linear = nn.Linear(512 * block.expansion, num_classes)

    def _stage(self, block: type[BasicBlock | Bottleneck], planes: int, count: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (count - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


class _PadShortcut(nn.Module):
    """Option A of He et al.: subsample by 2 and zero-pad the new channels (no parameters)."""

    def __init__(self, extra_channels: int) -> None:
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.extra // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.extra - half))


class HeBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride == 1 and in_planes == planes:
            self.shortcut: nn.Module = nn.Sequential()
        elif shortcut == "A":
            self.shortcut = _PadShortcut(planes - in_planes)
        else:
            self.shortcut = _projection(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class HeResNet(nn.Module):
    """He et al.'s CIFAR ResNet with 6n+2 layers: three stages of n blocks (16, 32, 64 channels)."""

    def __init__(self, depth: int, num_classes: int = 10, shortcut: str = "A", in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"depth must be 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' (zero padding) or 'B' (1x1 projection), got '{shortcut}'")
        n = (depth - 2) // 6
        self.in_planes = 16
        self.conv1 = _conv3x3(in_channels, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, n, 1, shortcut)
        self.layer2 = self._stage(32, n, 2, shortcut)
        self.layer3 = self._stage(64, n, 2, shortcut)
        self.linear = nn.Linear(64, num_classes)

    def _stage(self, planes: int, count: int, stride: int, shortcut: str) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (count - 1):
            layers.append(HeBlock(self.in_planes, planes, s, shortcut))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


@ARCHITECTURES.register("resnet18")
def resnet18(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-18 (3x3 stem, 64-512 channels, 11.2M parameters); common CIFAR checkpoint names."""
    return CifarResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels)


@ARCHITECTURES.register("resnet34")
def resnet34(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-34 (3x3 stem, basic blocks 3-4-6-3, 21.3M parameters)."""
    return CifarResNet(BasicBlock, (3, 4, 6, 3), num_classes, in_channels)


@ARCHITECTURES.register("resnet50")
def resnet50(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-50 (3x3 stem, bottleneck blocks 3-4-6-3, 23.5M parameters)."""
    return CifarResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels)


@ARCHITECTURES.register("resnet20")
def resnet20(num_classes: int = 10, shortcut: str = "A") -> HeResNet:
    """He et al.'s CIFAR ResNet-20 (16-32-64 channels, 0.27M parameters)."""
    return HeResNet(20, num_classes, shortcut)


@ARCHITECTURES.register("resnet32")
def resnet32(num_classes: int = 10, shortcut: str = "A") -> HeResNet:
    """He et al.'s CIFAR ResNet-32 (0.46M parameters)."""
    return HeResNet(32, num_classes, shortcut)


@ARCHITECTURES.register("resnet44")
def resnet44(num_classes: int = 10, shortcut: str = "A") -> HeResNet:
    """He et al.'s CIFAR ResNet-44 (0.66M parameters)."""
    return HeResNet(44, num_classes, shortcut)


@ARCHITECTURES.register("resnet56")
def resnet56(num_classes: int = 10, shortcut: str = "A") -> HeResNet:
    """He et al.'s CIFAR ResNet-56 (0.85M parameters)."""
    return HeResNet(56, num_classes, shortcut)
