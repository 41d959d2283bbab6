"""The 18 public CIFAR-10 checkpoints: how each upstream file becomes its card's weights.

The upstream containers, as ``torch.load(..., weights_only=True)`` returns them:

- akamaster/pytorch_resnet_cifar10 ``pretrained_models/resnet*.th``: ``{"state_dict": ..., "best_prec1": ...}``,
  saved from ``nn.DataParallel`` (every key starts with ``module.``, which is removed).
- alpha-beta-CROWN's Marabou and SDP-FO files: the state dict itself (``0.weight`` ... as an ``nn.Sequential``).
- alpha-beta-CROWN's ResNet-2b and sigmoid ConvSmall: ``{"state_dict": ..., <training records>}``.
- ERAN's ConvSmall (alpha-beta-CROWN), OVAL's nets and Wong et al.'s scaled nets: the layout of
  convex_adversarial's trainer, ``{"state_dict": [model, ...], "err": ..., ...}``; the first model is
  used. The scaled nets are cascades (Wong et al. 2018, section 4): only the cascade's first stage
  is converted, a classifier on its own; the later stages classify only the examples the earlier ones
  do not certify, which needs a verifier at test time.
- alpha-beta-CROWN's custom-op tutorial model (``custom_op/cifar_wide_adv.pth``): CNN-A-wide whose
  activations are ``LinearMaskedRelu`` layers, ``relu(x) * (1 - mask) + (slope * x + bias) * mask``.
  With every ``mask`` zero and finite ``slope``/``bias`` that is exactly ReLU; :func:`masked_relu_as_relu`
  checks this, refuses the file otherwise, drops the three buffers and renames the layers to
  :class:`~invarbench.models.architectures.verification_cifar.ConvDense`'s indices.
"""

from __future__ import annotations

from typing import Any

import torch

from tools.checkpoints import Conversion, ConversionError, at, pipeline, rename_prefixes, tensors, whole_file

ABCROWN = "LICENSES/alpha-beta-CROWN.txt"
CONVEX_ADVERSARIAL = "LICENSES/convex_adversarial.txt"
AKAMASTER = "LICENSES/pytorch_resnet_cifar10.txt"

# CNN-A-wide's layer names in the custom-op model -> the indices of the same layers in cifar_cnn_a.
_CUSTOM_OP_LAYERS = {"conv1.": "0.", "conv2.": "2.", "linear1.": "5.", "linear2.": "7."}
_MASKED_RELUS = ("linear_masked_relu1", "linear_masked_relu2", "linear_masked_relu3")


def masked_relu_as_relu(obj: Any) -> dict[str, torch.Tensor]:
    """The custom-op model's weights for a plain-ReLU CNN-A, after checking that its activations are ReLU.

    Raises :class:`ConversionError` if a masked-ReLU buffer is missing, a ``mask`` is non-zero anywhere
    (that neuron would be linear, which ``cifar_cnn_a`` cannot express), or a ``slope``/``bias`` is not
    finite (``0 * inf`` is NaN, so even a zero mask would not give ReLU).
    """
    state = tensors(obj)
    for layer in _MASKED_RELUS:
        for buffer in ("mask", "slope", "bias"):
            key = f"{layer}.{buffer}"
            if key not in state:
                raise ConversionError(f"the checkpoint has no {key}: not the custom-op CNN-A-wide layout")
        mask = state[f"{layer}.mask"]
        if bool((mask != 0).any()):
            raise ConversionError(
                f"{layer}.mask is non-zero at {int((mask != 0).sum())} of {mask.numel()} neurons: those neurons are "
                "linear, not ReLU, so the model is not a plain-ReLU CNN-A and cannot be converted to cifar_cnn_a"
            )
        for buffer in ("slope", "bias"):
            if not bool(torch.isfinite(state[f"{layer}.{buffer}"]).all()):
                raise ConversionError(f"{layer}.{buffer} is not finite everywhere: a zero mask would not give ReLU")
    weights = {k: v for k, v in state.items() if not k.startswith(_MASKED_RELUS)}
    return rename_prefixes(_CUSTOM_OP_LAYERS)(weights)


def _strip_module(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return rename_prefixes({"module.": ""})(state)


_first_model = pipeline(at("state_dict", 0))  # convex_adversarial's trainer: a list of models

CONVERSIONS: list[Conversion] = [
    Conversion(
        "cifar10/akamaster-resnet20",
        "cifar10/akamaster_resnet20.th",
        pipeline(at("state_dict"), _strip_module),
        AKAMASTER,
    ),
    Conversion(
        "cifar10/akamaster-resnet56",
        "cifar10/akamaster_resnet56.th",
        pipeline(at("state_dict"), _strip_module),
        AKAMASTER,
    ),
    Conversion("cifar10/marabou-small", "cifar10/marabou_cifar_small.pth", whole_file, ABCROWN),
    Conversion("cifar10/marabou-medium", "cifar10/marabou_cifar_medium.pth", whole_file, ABCROWN),
    Conversion("cifar10/marabou-large", "cifar10/marabou_cifar_large.pth", whole_file, ABCROWN),
    Conversion(
        "cifar10/abcrown-resnet2b-adv", "cifar10/abcrown_resnet2b_adv2.pth", pipeline(at("state_dict")), ABCROWN
    ),
    Conversion("cifar10/sdp-cnn-a-adv", "cifar10/sdp_cnn_a_adv.model", whole_file, ABCROWN),
    Conversion("cifar10/sdp-cnn-a-adv4", "cifar10/sdp_cnn_a_adv4.model", whole_file, ABCROWN),
    Conversion("cifar10/sdp-cnn-a-mix", "cifar10/sdp_cnn_a_mix.model", whole_file, ABCROWN),
    Conversion("cifar10/sdp-cnn-a-mix4", "cifar10/sdp_cnn_a_mix4.model", whole_file, ABCROWN),
    Conversion("cifar10/eran-convsmall-pgd", "cifar10/eran_cifar_convsmall_pgd.pth", _first_model, ABCROWN),
    Conversion(
        "cifar10/abcrown-convsmall-sigmoid",
        "cifar10/abcrown_convsmall_sigmoid.pth",
        pipeline(at("state_dict")),
        ABCROWN,
    ),
    Conversion(
        "cifar10/abcrown-cnn-a-wide-adv",
        "cifar10/abcrown_cifar_wide_adv_customop.pth",
        masked_relu_as_relu,
        ABCROWN,
    ),
    Conversion("cifar10/oval-base-kw", "cifar10/oval_cifar_base_kw.pth", _first_model, ABCROWN),
    Conversion("cifar10/oval-wide-kw", "cifar10/oval_cifar_wide_kw.pth", _first_model, ABCROWN),
    Conversion("cifar10/oval-deep-kw", "cifar10/oval_cifar_deep_kw.pth", _first_model, ABCROWN),
    Conversion(
        "cifar10/wong-scaled-small-8px-stage0",
        "cifar10/wong_cifar_small_8px_stage0.pth",
        _first_model,
        CONVEX_ADVERSARIAL,
    ),
    Conversion(
        "cifar10/wong-scaled-small-l2-36px-stage0",
        "cifar10/wong_cifar_small_l2_36px_stage0.pth",
        _first_model,
        CONVEX_ADVERSARIAL,
    ),
]
