"""The small MNIST networks of the certified-robustness and verification literature.

Two families cover the public checkpoints that invarbench converts (``tools/convert_checkpoints.py``):

- :class:`TwoConvNet`: two strided convolutions with ReLU, then one hidden fully connected layer.
  Wong & Kolter's MNIST network (ICML 2018, arXiv:1711.00851; also the "small" model of Wong et
  al., NeurIPS 2018, and SDP-FO's CNN-A, Dathathri et al., NeurIPS 2020), ERAN's ConvSmall, the
  "MadryCNN no-maxpool tiny" of BaB-Attack (Zhang et al., ICML 2022) and COLT's ConvMed
  (Balunovic & Vechev, ICLR 2020) differ only in channels, kernels, padding and hidden width.
- :class:`MLP`: ERAN's fully connected ReLU networks (6x100, 6x200, 9x100, 9x200).

Both are ``nn.Sequential`` in the upstream layer order, so their parameter names are the
upstream's indices (``0.weight`` for the first convolution, ``5.weight`` for the first linear
layer; ``1.weight`` for an MLP's first linear layer, after ``Flatten``). Inputs are images
[N, 1, 28, 28] in float32, after the card's normalisation (``preprocessing``); outputs are logits
[N, num_classes].
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from invarbench.models.architectures.base import ARCHITECTURES


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class TwoConvNet(nn.Sequential):
    """conv - ReLU - conv - ReLU - flatten - linear - ReLU - linear.

    ``convs`` holds two ``(out_channels, kernel, stride, padding)`` tuples. Raises ``ValueError``
    when ``input_size`` leaves no spatial extent after the convolutions.
    """

    def __init__(
        self,
        convs: Sequence[Sequence[int]],
        hidden: int,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int = 28,
    ) -> None:
        if len(convs) != 2 or any(len(c) != 4 for c in convs):
            raise ValueError(f"convs must be two (out_channels, kernel, stride, padding) tuples, got {convs}")
        (c1, k1, s1, p1), (c2, k2, s2, p2) = convs
        side = _conv_out(_conv_out(input_size, k1, s1, p1), k2, s2, p2)
        if side < 1:
            raise ValueError(f"input_size {input_size} is too small for these convolutions")
        super().__init__(
            nn.Conv2d(in_channels, c1, k1, stride=s1, padding=p1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, k2, stride=s2, padding=p2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c2 * side * side, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )


class MLP(nn.Sequential):
    """flatten, then ``layers`` linear layers of ``width`` units with ReLU between them.

    ``layers`` counts every linear layer, the output layer included (ERAN's "6x100" has five
    hidden layers of 100 units and a 100 -> 10 output layer).
    """

    def __init__(self, layers: int, width: int, num_classes: int = 10, in_features: int = 784) -> None:
        if layers < 1 or width < 1:
            raise ValueError(f"layers and width must be positive, got layers={layers}, width={width}")
        modules: list[nn.Module] = [nn.Flatten()]
        fan_in = in_features
        for _ in range(layers - 1):
            modules += [nn.Linear(fan_in, width), nn.ReLU()]
            fan_in = width
        modules.append(nn.Linear(fan_in, num_classes))
        super().__init__(*modules)


@ARCHITECTURES.register("kw_mnist_cnn")
def kw_mnist_cnn(num_classes: int = 10, in_channels: int = 1, input_size: int = 28):
    """Wong & Kolter's MNIST CNN (= SDP-FO CNN-A): conv 16@4x4/2 pad 1, conv 32@4x4/2 pad 1, FC 100."""
    return TwoConvNet(((16, 4, 2, 1), (32, 4, 2, 1)), 100, num_classes, in_channels, input_size)


@ARCHITECTURES.register("eran_convsmall")
def eran_convsmall(num_classes: int = 10, in_channels: int = 1, input_size: int = 28):
    """ERAN's ConvSmall: conv 16@4x4/2, conv 32@4x4/2 (no padding), FC 100."""
    return TwoConvNet(((16, 4, 2, 0), (32, 4, 2, 0)), 100, num_classes, in_channels, input_size)


@ARCHITECTURES.register("madry_cnn_tiny_nopool")
def madry_cnn_tiny_nopool(num_classes: int = 10, in_channels: int = 1, input_size: int = 28):
    """BaB-Attack's MadryCNN, tiny and without max-pooling: conv 4@5x5/2 pad 2, conv 8@5x5/2 pad 2, FC 128."""
    return TwoConvNet(((4, 5, 2, 2), (8, 5, 2, 2)), 128, num_classes, in_channels, input_size)


@ARCHITECTURES.register("colt_convmed")
def colt_convmed(num_classes: int = 10, in_channels: int = 1, input_size: int = 28, width1: int = 2, width2: int = 2):
    """COLT's ConvMed: conv 16*width1@5x5/2 pad 2, conv 32*width2@4x4/2 pad 1, FC 100 (MNIST: widths 2, 2)."""
    return TwoConvNet(((16 * width1, 5, 2, 2), (32 * width2, 4, 2, 1)), 100, num_classes, in_channels, input_size)


@ARCHITECTURES.register("eran_mlp")
def eran_mlp(layers: int = 6, width: int = 100, num_classes: int = 10, in_features: int = 784):
    """ERAN's fully connected ReLU nets: `layers` linear layers of `width` units (6x100, 6x200, 9x100, 9x200)."""
    return MLP(layers, width, num_classes, in_features)
