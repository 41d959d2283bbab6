"""The 11 public MNIST checkpoints: which upstream file becomes which card's weights, and how.

Upstream files are under ``mnist/`` of the checkpoints folder; their provenance (repository,
commit, path, sha256, licence) is each card's ``origin``. Containers and extras, per family:

- TRADES, SDP-FO, BaB-Attack and Wong & Kolter (``models/mnist.pth``): the file is the state dict.
- ERAN's networks as converted by alpha-beta-CROWN: ``{"state_dict": [state dict], "acc": ...}``.
- Wong et al.'s scaled models: ``{"state_dict": [stage 0, stage 1, ...], "err": ..., ...}``, a
  cascade; only stage 0 is a classifier on its own (the cascade routes by certification).
- COLT: its own layer wrappers (``blocks.layers.<i>.conv`` / ``.linear``; layer 0 is the
  normalisation, which has no tensors) and ``deepz_lambda`` tensors, the slopes of its ReLU
  relaxation used only during training: dropped, and the layers renamed to ``nn.Sequential`` indices.
"""

from __future__ import annotations

from tools.checkpoints import Conversion, at, drop, pipeline, rename_prefixes, whole_file

ABCROWN = "LICENSES/alpha-beta-CROWN.txt"
CONVEX_ADVERSARIAL = "LICENSES/convex_adversarial.txt"

_ERAN = pipeline(at("state_dict", 0))
_COLT = pipeline(
    whole_file,
    drop(r"\.deepz_lambda$"),
    rename_prefixes(
        {
            "blocks.layers.1.conv.": "0.",
            "blocks.layers.3.conv.": "2.",
            "blocks.layers.6.linear.": "5.",
            "blocks.layers.8.linear.": "7.",
        }
    ),
)

CONVERSIONS = [
    Conversion("mnist/trades-smallcnn", "mnist/trades_mnist_smallcnn.pt", whole_file, "LICENSES/TRADES.txt"),
    Conversion("mnist/wong-kolter-cnn", "mnist/wong_kolter_mnist_eps0.1.pth", whole_file, CONVEX_ADVERSARIAL),
    Conversion(
        "mnist/wong-scaled-small-stage0",
        "mnist/wong_mnist_small_0.3_stage0.pth",
        pipeline(at("state_dict", 0)),
        CONVEX_ADVERSARIAL,
    ),
    Conversion("mnist/colt-convmed", "mnist/colt_mnist_convmed_0.1.pt", _COLT, "LICENSES/colt.txt"),
    Conversion("mnist/sdp-cnn-a-adv", "mnist/sdp_mnist_cnn_a_adv.model", whole_file, ABCROWN),
    Conversion("mnist/babattack-madrycnn-tiny", "mnist/babattack_madrycnn_tiny_adv.pt", whole_file, ABCROWN),
    Conversion("mnist/eran-convsmall", "mnist/eran_mnist_convsmall_nat.pth", _ERAN, ABCROWN),
    Conversion("mnist/eran-fc6x100", "mnist/eran_mnist_fc6x100_nat.pth", _ERAN, ABCROWN),
    Conversion("mnist/eran-fc6x200", "mnist/eran_mnist_fc6x200_nat.pth", _ERAN, ABCROWN),
    Conversion("mnist/eran-fc9x100", "mnist/eran_mnist_fc9x100_nat.pth", _ERAN, ABCROWN),
    Conversion("mnist/eran-fc9x200", "mnist/eran_mnist_fc9x200_nat.pth", _ERAN, ABCROWN),
]
