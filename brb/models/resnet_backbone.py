"""Bare ResNet-18 / ResNet-34 backbones for the self-supervised family (issue 15): ``encode`` is the pooled
512 features, with no head, as ProPos and its baselines put their projector directly on them.

* ``bigresnet18``, ``bigresnet34`` (ProPos's names): the CIFAR stem (3x3 stride-1 first convolution, no
  max-pool), for 32x32 images (CIFAR-10, CIFAR-100-20; digits upsampled);
* ``resnet18_std``, ``resnet34_std``: torchvision's standard stem (7x7 stride-2 convolution + 3x3 stride-2
  max-pool) for 96-224 px images (STL-10, ImageNet-10, ImageNet-Dogs), as ProPos's ``resnet18`` / ``resnet34``.

Both are torchvision's ResNets with the classifier removed (torchvision-layout weights load). BRB's reset blocks:
``layer4`` (convolutions and norms), the stage the paper resets in its ResNet. The clustering stages use the
512-d ``encode``; DEC / IDEC / DCN on it need ``cluster.*`` weights without reconstruction (no decoder).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from brb.models.blocks import ResetBlocksMixin


def resnet_trunk(depth: int, stem: str, in_channels: int = 3) -> nn.Module:
    """torchvision ResNet-``depth`` (18 or 34) with the ``cifar`` or ``standard`` stem; outputs the pooled 512."""
    from torchvision.models import resnet18, resnet34

    if depth not in (18, 34):
        raise ValueError(f"ResNet depth must be 18 or 34, got {depth}")
    net = (resnet18 if depth == 18 else resnet34)(weights=None)
    if stem == "cifar":
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif stem == "standard":
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    else:
        raise ValueError(f"unknown ResNet stem {stem!r} (cifar, standard)")
    net.fc = nn.Identity()
    return net


class ResNetBackbone(ResetBlocksMixin, nn.Module):
    """A ResNet trunk whose ``encode`` is its pooled features (no head, no decoder, no projector)."""

    FEATURES = 512
    DEPTH = 18
    STEM = "cifar"
    decoder = None
    ARCH_FIELDS = ("input_shape",)

    def __init__(self, input_shape, embedding_dim=None, hidden=None, batch_norm: bool = True):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(f"{type(self).__name__} needs image data (C, H, W); got samples of shape {self.input_shape}")
        if embedding_dim not in (None, self.FEATURES):
            raise ValueError(f"a bare ResNet's embedding is its {self.FEATURES} pooled features; model.embedding_dim "
                             f"{embedding_dim} does not apply (leave it unset, or use resnet18 with its MLP head)")
        self.embedding_dim = self.FEATURES
        self.backbone = resnet_trunk(self.DEPTH, self.STEM, self.input_shape[0])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.encode(x), None

    def intermediate(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """Outputs of the stem, ``layer1`` ... ``layer4`` and the pooled features."""
        b = self.backbone
        out = [("stem", b.maxpool(b.relu(b.bn1(b.conv1(x)))))]
        for name in ("layer1", "layer2", "layer3", "layer4"):
            out.append((name, getattr(b, name)(out[-1][1])))
        out.append(("pool", torch.flatten(b.avgpool(out[-1][1]), 1)))
        return out

    def named_reset_blocks(self, include_embedding: bool = False) -> list[tuple[str, list[nn.Module]]]:
        layer4 = [m for m in self.backbone.layer4.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
        return [("layer4", layer4)]


class BigResNet18(ResNetBackbone):
    DEPTH, STEM = 18, "cifar"


class BigResNet34(ResNetBackbone):
    DEPTH, STEM = 34, "cifar"


class ResNet18Std(ResNetBackbone):
    DEPTH, STEM = 18, "standard"


class ResNet34Std(ResNetBackbone):
    DEPTH, STEM = 34, "standard"
