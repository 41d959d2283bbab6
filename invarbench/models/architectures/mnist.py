"""Small MNIST-scale CNNs: a LeNet-style net and the 4-conv "SmallCNN" of TRADES."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from invarbench.models.architectures.base import ARCHITECTURES


class LeNet(nn.Module):
    """A LeNet-style network: two 5x5 conv + max-pool stages and two linear layers.

    For 28x28 inputs with the defaults it has about 215k parameters (under 1 MB in float32).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int = 28,
        channels: tuple[int, int] = (16, 32),
        hidden: int = 128,
    ) -> None:
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = input_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * side * side, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """Four 3x3 convolutions (32, 32, 64, 64 channels) with two max-pools, then 200-200 fully connected.

    The MNIST network of TRADES (Zhang et al., 2019) and of much of the MNIST robustness
    literature. Parameter names match its public checkpoints: ``feature_extractor.conv1`` ...
    ``feature_extractor.conv4``, ``classifier.fc1`` ... ``classifier.fc3``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, drop: float = 0.5) -> None:
        super().__init__()
        self.feature_extractor = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(in_channels, 32, 3)),
                    ("relu1", nn.ReLU()),
                    ("conv2", nn.Conv2d(32, 32, 3)),
                    ("relu2", nn.ReLU()),
                    ("maxpool1", nn.MaxPool2d(2, 2)),
                    ("conv3", nn.Conv2d(32, 64, 3)),
                    ("relu3", nn.ReLU()),
                    ("conv4", nn.Conv2d(64, 64, 3)),
                    ("relu4", nn.ReLU()),
                    ("maxpool2", nn.MaxPool2d(2, 2)),
                ]
            )
        )
        side = ((input_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"input_size {input_size} is too small for SmallCNN (at least 14)")
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("fc1", nn.Linear(64 * side * side, 200)),
                    ("relu1", nn.ReLU()),
                    ("drop", nn.Dropout(drop)),
                    ("fc2", nn.Linear(200, 200)),
                    ("relu2", nn.ReLU()),
                    ("fc3", nn.Linear(200, num_classes)),
                ]
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.feature_extractor(x), 1))


@ARCHITECTURES.register("lenet")
def lenet(num_classes: int = 10, in_channels: int = 1, input_size: int = 28, channels=(16, 32), hidden: int = 128):
    """LeNet-style CNN: two 5x5 conv + max-pool stages (16, 32 channels), a 128-unit hidden layer."""
    return LeNet(num_classes, in_channels, input_size, tuple(channels), hidden)


@ARCHITECTURES.register("smallcnn")
def smallcnn(num_classes: int = 10, in_channels: int = 1, input_size: int = 28):
    """TRADES' 4-conv MNIST CNN (32-32-64-64 channels, 200-200 FC); TRADES/MNIST checkpoint names."""
    return SmallCNN(num_classes, in_channels, input_size)
