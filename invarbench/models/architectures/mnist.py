"""Small MNIST-scale CNNs."""

from __future__ import annotations

from torch import nn

from invarbench.models.architectures import ARCHITECTURES


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


@ARCHITECTURES.register("lenet")
def lenet(num_classes: int = 10, in_channels: int = 1, input_size: int = 28, channels=(16, 32), hidden: int = 128):
    return LeNet(num_classes, in_channels, input_size, tuple(channels), hidden)
