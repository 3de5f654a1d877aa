"""DeepCluster's networks (Caron et al., ECCV 2018; read from facebookresearch/deepcluster, ``models/alexnet.py``,
``models/vgg16.py``) and a small CPU-sized network of the same layout.

Every network is ``[Sobel] → body (convolutions, BatchNorm, ReLU, max-pooling) → flatten → classifier → [top layer]``:

* ``features(x)``: the penultimate representation, the classifier's last Linear **before** its ReLU — what DeepCluster
  clusters (it removes the top layer and the last ReLU and forwards in eval mode); ``features(x, relu=True)`` is the
  top layer's input. ``encode`` is ``features``. ``embedding_dim`` is its width.
* ``top_layer``: ``nn.Linear(embedding_dim, k)`` or None; DeepCluster replaces it every epoch
  (:meth:`DeepClusterNet.reset_top_layer`: N(0, 0.01) weights, zero bias). ``forward(x)`` = ``top_layer(ReLU(features(x)))``,
  or ``features(x)`` while there is no top layer (DeepCluster's feature-extraction state).
* ``named_reset_blocks``: the convolution blocks ``conv0``, ``conv1``, … (a Conv2d and its BatchNorm) and the classifier's
  Linear layers ``fc0``, ``fc1``, …, input side first; the last Linear is the embedding layer (only with
  ``include_embedding``); the top layer never (it is re-drawn every epoch anyway). ``intermediate(x)``: the output of
  each of these blocks (after ReLU and pooling), named alike; the last, ``fc<n>``, equals ``features(x)``.
* ``arch_kwargs()``: the constructor arguments (ARCH_FIELDS), ``num_classes`` being the current top layer's size.

Sobel (:class:`SobelFilter`, optional in every network): a fixed 1×1 convolution to grey, weight 1/3 per RGB channel
(1/C for C channels: 1 for a grey image) and zero bias, then a fixed 3×3 convolution (padding 1, zero bias) with the two
Sobel kernels ``[[1, 0, -1], [2, 0, -2], [1, 0, -1]]`` (horizontal gradient) and its transpose (vertical); as
``nn.Conv2d`` computes a cross-correlation, a step from dark (left) to bright (right) gives negative responses in the
first channel. The weights are buffers (not parameters): nothing trains them, no optimiser sees them. The first
convolution then takes 2 channels.

Initialisation (their ``_initialize_weights``, on every network): convolution weights N(0, 2/(k_h·k_w·C_out)), biases 0;
BatchNorm weight 1, bias 0; Linear weights N(0, 0.01), biases 0. Convolutions keep their bias (as theirs), although a
BatchNorm follows.

Networks (shapes for the sizes they are meant for):

* :class:`AlexNetBN` — their "2012" configuration with BatchNorm after every convolution and no LRN:
  conv 96@11×11 stride 4 padding 2 → BN → ReLU → max-pool 3 stride 2 → conv 256@5×5 p2 → BN → ReLU → max-pool →
  conv 384@3×3 p1 → conv 384@3×3 p1 → conv 256@3×3 p1 (each BN → ReLU) → max-pool → 256×6×6 (224 input) →
  Dropout 0.5 → Linear 4096 → ReLU → Dropout 0.5 → Linear 4096 (= features) → [ReLU → top layer].
  Small inputs: the three poolings need an input side ≥ 63 with stride 4 (64 → 256×1×1). Below that, the first
  convolution's stride becomes the largest of 3, 2, 1 that leaves at least 1×1 (``first_stride``; 32 → stride 1 →
  256×2×2; sides below 21 are refused); pass ``first_stride`` to fix it. The flattened size is computed from the input size.
* :class:`VGG16BN` — VGG-16 with BatchNorm: 3×3 convolutions (padding 1) 64, 64, M, 128, 128, M, 256 ×3, M, 512 ×3, M,
  512 ×3, M (max-pool 2 stride 2; BN → ReLU after each convolution) → 512×7×7 (224 input) → Linear 4096 → ReLU →
  Dropout 0.5 → Linear 4096 (= features) → [ReLU → top layer]. Input sides ≥ 32 (32 → 512×1×1).
* :class:`SmallConvNet` — for CPU runs on digits, (Fashion-)MNIST, CIFAR-sized images: AlexNet-BN's layout at a quarter
  of its widths with kernels for 28–32 px inputs (the CPU calibration's "Sobel, 5-conv AlexNet-BN layout, fc 256"):
  conv 24@5×5 p2 → BN → ReLU → max-pool 3 stride 2 padding 1 → conv 64@5×5 p2 → BN → ReLU → max-pool → conv 96@3×3 p1
  → conv 96@3×3 p1 → conv 64@3×3 p1 (each BN → ReLU) → max-pool → 64×4×4 (32 input; 28 → 64×4×4 too) → Dropout 0.5 →
  Linear 256 → ReLU → Dropout 0.5 → Linear 256 (= features) → [ReLU → top layer]. ``channels`` and ``fc`` change the
  widths. Any input side (the padded poolings never go below 1×1; sides ≤ 8 end at 1×1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from brb.cluster.deepcluster_ops import make_top_layer
from brb.models.blocks import ResetBlocksMixin

#: the Sobel kernel for horizontal gradients (vertical edges); the second kernel is its transpose
SOBEL_KERNEL = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))
#: their AlexNet "2012" configuration: (channels, kernel, stride, padding) per convolution, "M" = max-pool 3 stride 2
ALEXNET_CFG = ((96, 11, 4, 2), "M", (256, 5, 1, 2), "M", (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1), "M")
#: VGG-16's convolutions (3×3, padding 1), "M" = max-pool 2 stride 2
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
#: SmallConvNet: kernel and padding of its five convolutions; max-pool 3 stride 2 padding 1 after the first, second, fifth
SMALL_KERNELS = ((5, 2), (5, 2), (3, 1), (3, 1), (3, 1))
SMALL_POOL_AFTER = (0, 1, 4)

Shape = Union[int, Sequence[int]]


def _as_input_shape(input_shape: Shape) -> tuple[int, int, int]:
    if isinstance(input_shape, int):
        return (3, int(input_shape), int(input_shape))
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"DeepCluster networks need image inputs (C, H, W) or a side length; got {shape}")
    return shape


class SobelFilter(nn.Module):
    """Fixed grey conversion (mean of the C input channels) and Sobel pair: (N, C, H, W) → (N, 2, H, W)."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.in_channels = int(in_channels)
        self.register_buffer("grey_weight", torch.full((1, self.in_channels, 1, 1), 1.0 / self.in_channels), persistent=False)
        gx = torch.tensor(SOBEL_KERNEL)
        self.register_buffer("sobel_weight", torch.stack([gx, gx.T]).unsqueeze(1), persistent=False)

    def grey(self, x: torch.Tensor) -> torch.Tensor:
        """The grey image (N, 1, H, W): the 1×1 convolution with weights 1/C."""
        return F.conv2d(x, self.grey_weight.to(x.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.grey(x), self.sobel_weight.to(x.dtype), padding=1)


@torch.no_grad()
def deepcluster_init_(module: nn.Module) -> nn.Module:
    """DeepCluster's initialisation of every Conv2d, BatchNorm2d and Linear in ``module`` (module notes)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.normal_(0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.fill_(1.0)
            m.bias.zero_()
        elif isinstance(m, nn.Linear):
            m.weight.normal_(0.0, 0.01)
            if m.bias is not None:
                m.bias.zero_()
    return module


def _side(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def stack_output_shape(layers: nn.Sequential, input_shape: Sequence[int]) -> tuple[int, int, int]:
    """Output shape (C, H, W) of a stack of Conv2d / MaxPool2d / shape-keeping layers (floor mode, dilation 1);
    a side below 1 anywhere gives (C, 0, 0)."""
    c, h, w = (int(s) for s in input_shape)
    for m in layers:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
            h, w = _side(h, k[0], s[0], p[0]), _side(w, k[1], s[1], p[1])
            if isinstance(m, nn.Conv2d):
                c = m.out_channels
            if h < 1 or w < 1:
                return (c, 0, 0)
    return (c, h, w)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int, padding: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class DeepClusterNet(ResetBlocksMixin, nn.Module):
    """What the three networks share (module notes). Subclasses build ``body`` and ``classifier`` and call
    :meth:`_finish`. Modules: ``sobel_filter`` (:class:`SobelFilter` or None), ``body`` (Sequential), ``classifier``
    (Sequential ending with the embedding Linear, no ReLU), ``top_layer`` (Linear or None)."""

    ARCH_FIELDS: tuple[str, ...] = ("input_shape", "sobel", "num_classes")
    provides = frozenset()
    decoder = None

    def _start(self, input_shape: Shape, sobel: bool) -> int:
        """Set ``input_shape``, ``sobel``, ``sobel_filter``; the channels the first convolution takes."""
        self.input_shape = _as_input_shape(input_shape)
        self.sobel = bool(sobel)
        self.sobel_filter = SobelFilter(self.input_shape[0]) if self.sobel else None
        return 2 if self.sobel else self.input_shape[0]

    def _body_output(self, body: nn.Sequential, in_channels: int, minimum: str) -> tuple[int, int, int]:
        shape = stack_output_shape(body, (in_channels, *self.input_shape[1:]))
        if shape[1] < 1:
            raise ValueError(f"input shape {self.input_shape} is too small for {type(self).__name__}: {minimum}")
        return shape

    def _finish(self, body: nn.Sequential, classifier: nn.Sequential, num_classes: Optional[int]) -> None:
        self.body = body
        self.classifier = classifier
        self.embedding_dim = [m for m in classifier if isinstance(m, nn.Linear)][-1].out_features
        self.top_layer = nn.Linear(self.embedding_dim, int(num_classes)) if num_classes else None
        deepcluster_init_(self)

    @property
    def num_classes(self) -> Optional[int]:
        """Outputs of the current top layer (None without one)."""
        return None if self.top_layer is None else self.top_layer.out_features

    def reset_top_layer(self, k: Optional[int], generator: Optional[torch.Generator] = None) -> Optional[nn.Linear]:
        """Replace the top layer by a new ``Linear(embedding_dim, k)`` (N(0, 0.01) weights, zero bias) on the
        network's device and dtype, or remove it (``k`` None). Returns the new layer (give it a new optimiser)."""
        if k is None:
            self.top_layer = None
            return None
        ref = self.classifier[-1].weight
        self.top_layer = make_top_layer(self.embedding_dim, int(k), device=ref.device, dtype=ref.dtype, generator=generator)
        return self.top_layer

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), *self.input_shape)
        return self.sobel_filter(x) if self.sobel_filter is not None else x

    def features(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        """The penultimate representation (N, ``embedding_dim``): the last classifier Linear, pre-ReLU (DeepCluster's
        clustering features; use eval mode as they do), or after its ReLU (``relu``: the top layer's input)."""
        h = self.body(self._input(x))
        f = self.classifier(h.reshape(len(h), -1))
        return F.relu(f) if relu else f

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``top_layer(ReLU(features(x)))``; ``features(x)`` while there is no top layer."""
        f = self.features(x)
        return f if self.top_layer is None else self.top_layer(F.relu(f))

    def intermediate(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """Output of every block of :meth:`named_reset_blocks` (include_embedding), input side first: ``conv<i>``
        (N, C, H, W) after BN → ReLU and the pooling that follows, ``fc<j>`` (N, width) after ReLU (and the Dropout
        before the next Linear); the last, ``fc<n>``, pre-ReLU, equals :meth:`features`."""
        outputs: list[tuple[str, torch.Tensor]] = []
        h = self._input(x)
        for stack, kind, prefix in ((self.body, nn.Conv2d, "conv"), (self.classifier, nn.Linear, "fc")):
            if prefix == "fc":
                h = h.reshape(len(h), -1)
            seen = 0
            for i, m in enumerate(stack):
                h = m(h)
                seen += isinstance(m, kind)
                following = stack[i + 1] if i + 1 < len(stack) else None
                if seen and (following is None or isinstance(following, kind)):
                    outputs.append((f"{prefix}{seen - 1}", h))
        return outputs

    def named_reset_blocks(self, include_embedding: bool = False) -> list[tuple[str, list[nn.Module]]]:
        """``conv0`` … (a Conv2d and its BatchNorm), then ``fc0`` … (a Linear), input side first; the last Linear (the
        embedding layer) only with ``include_embedding``; never the top layer."""
        blocks: list[tuple[str, list[nn.Module]]] = []
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                blocks.append((f"conv{len(blocks)}", [m]))
            elif isinstance(m, nn.BatchNorm2d):
                blocks[-1][1].append(m)
        linears = [m for m in self.classifier if isinstance(m, nn.Linear)]
        if not include_embedding:
            linears = linears[:-1]
        return blocks + [(f"fc{j}", [m]) for j, m in enumerate(linears)]


class AlexNetBN(DeepClusterNet):
    """DeepCluster's AlexNet with BatchNorm ("2012" configuration; module notes).

    ``input_shape``: (C, H, W) or a side (3 channels); ``sobel``: the fixed Sobel input filter (their ``main.sh``
    runs with it); ``num_classes``: an initial top layer (None: none); ``first_stride``: the first convolution's
    stride (None: 4, or less for inputs smaller than 63)."""

    ARCH_FIELDS = ("input_shape", "sobel", "num_classes", "first_stride")

    def __init__(self, input_shape: Shape = (3, 224, 224), sobel: bool = True, num_classes: Optional[int] = None,
                 first_stride: Optional[int] = None):
        super().__init__()
        in_channels = self._start(input_shape, sobel)
        strides = (int(first_stride),) if first_stride is not None else (4, 3, 2, 1)
        for stride in strides:
            body = self._make_body(in_channels, stride)
            shape = stack_output_shape(body, (in_channels, *self.input_shape[1:]))
            if shape[1] >= 1:
                break
        self.first_stride = stride
        shape = self._body_output(body, in_channels, f"with first_stride={stride} the three poolings leave less than 1×1 "
                                                     "(stride 4 needs sides >= 63, stride 1 sides >= 21)")
        flat = shape[0] * shape[1] * shape[2]
        classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(flat, 4096), nn.ReLU(inplace=True),
                                   nn.Dropout(0.5), nn.Linear(4096, 4096))
        self._finish(body, classifier, num_classes)

    @staticmethod
    def _make_body(in_channels: int, first_stride: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for i, item in enumerate(ALEXNET_CFG):
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
                continue
            channels, kernel, stride, padding = item
            layers += _conv_bn_relu(in_channels, channels, kernel, first_stride if i == 0 else stride, padding)
            in_channels = channels
        return nn.Sequential(*layers)


class VGG16BN(DeepClusterNet):
    """DeepCluster's VGG-16 with BatchNorm (module notes); arguments as :class:`AlexNetBN` (no ``first_stride``)."""

    def __init__(self, input_shape: Shape = (3, 224, 224), sobel: bool = True, num_classes: Optional[int] = None):
        super().__init__()
        in_channels = self._start(input_shape, sobel)
        layers: list[nn.Module] = []
        c = in_channels
        for item in VGG16_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += _conv_bn_relu(c, item, 3, 1, 1)
                c = item
        body = nn.Sequential(*layers)
        shape = self._body_output(body, in_channels, "five 2×2 poolings need sides >= 32")
        classifier = nn.Sequential(nn.Linear(shape[0] * shape[1] * shape[2], 4096), nn.ReLU(inplace=True),
                                   nn.Dropout(0.5), nn.Linear(4096, 4096))
        self._finish(body, classifier, num_classes)


class SmallConvNet(DeepClusterNet):
    """A CPU-sized network in AlexNet-BN's layout (module notes): five convolutions of widths ``channels`` (default a
    quarter of AlexNet's), two Linear layers of width ``fc`` (the last is the embedding)."""

    ARCH_FIELDS = ("input_shape", "sobel", "num_classes", "channels", "fc")

    def __init__(self, input_shape: Shape = (1, 32, 32), sobel: bool = True, num_classes: Optional[int] = None,
                 channels: Sequence[int] = (24, 64, 96, 96, 64), fc: int = 256):
        super().__init__()
        in_channels = self._start(input_shape, sobel)
        self.channels = tuple(int(c) for c in channels)
        self.fc = int(fc)
        if len(self.channels) != len(SMALL_KERNELS) or min(self.channels) < 1 or self.fc < 1:
            raise ValueError(f"SmallConvNet needs {len(SMALL_KERNELS)} positive channel widths and fc >= 1; "
                             f"got channels={list(self.channels)}, fc={fc}")
        layers: list[nn.Module] = []
        c = in_channels
        for i, (width, (kernel, padding)) in enumerate(zip(self.channels, SMALL_KERNELS)):
            layers += _conv_bn_relu(c, width, kernel, 1, padding)
            if i in SMALL_POOL_AFTER:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
            c = width
        body = nn.Sequential(*layers)
        shape = self._body_output(body, in_channels, "the poolings leave less than 1×1")
        classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(shape[0] * shape[1] * shape[2], self.fc), nn.ReLU(inplace=True),
                                   nn.Dropout(0.5), nn.Linear(self.fc, self.fc))
        self._finish(body, classifier, num_classes)


class DCResNet18(DeepClusterNet):
    """ResNet-18 with the CIFAR stem (3×3 stride-1 first convolution, no max-pool; ``brb.models.resnet_backbone``)
    as DeepCluster's body for 32 px images, the setting users run DeepCluster in on CIFAR-10 (their code has only
    AlexNet and VGG-16): pooled 512 → Linear ``fc`` (= features, pre-ReLU; AlexNet's fc layer in this role) →
    [ReLU → top layer]. Their initialisation (which for the convolutions is torchvision's own for ResNets).
    Blocks: ``stem`` (first convolution + BN), ``layer1`` … ``layer4`` (their convolutions and norms), ``fc0``."""

    ARCH_FIELDS = ("input_shape", "sobel", "num_classes", "fc")

    def __init__(self, input_shape: Shape = (3, 32, 32), sobel: bool = True, num_classes: Optional[int] = None,
                 fc: int = 512):
        from brb.models.resnet_backbone import resnet_trunk

        super().__init__()
        in_channels = self._start(input_shape, sobel)
        self.fc = int(fc)
        if self.fc < 1:
            raise ValueError(f"DCResNet18 needs fc >= 1, got {fc}")
        self._finish(resnet_trunk(18, "cifar", in_channels), nn.Sequential(nn.Linear(512, self.fc)), num_classes)

    def intermediate(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """Outputs of ``stem``, ``layer1`` … ``layer4`` (N, C, H, W) and ``fc0`` (= :meth:`features`)."""
        b = self.body
        h = b.relu(b.bn1(b.conv1(self._input(x))))
        outputs = [("stem", h)]
        for name in ("layer1", "layer2", "layer3", "layer4"):
            h = getattr(b, name)(h)
            outputs.append((name, h))
        return outputs + [("fc0", self.classifier(torch.flatten(b.avgpool(h), 1)))]

    def named_reset_blocks(self, include_embedding: bool = False) -> list[tuple[str, list[nn.Module]]]:
        b = self.body
        blocks = [("stem", [b.conv1, b.bn1])]
        for name in ("layer1", "layer2", "layer3", "layer4"):
            blocks.append((name, [m for m in getattr(b, name).modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]))
        return blocks + ([("fc0", [self.classifier[0]])] if include_embedding else [])


# --- the registry's networks: the constructors above behind the keywords brb.engine.common.new_model passes ----------


def _check_width(name: str, embedding_dim: Optional[int], width: int) -> None:
    if embedding_dim not in (None, width):
        raise ValueError(f"{name}: the features are the classifier's {width}-wide last Linear; model.embedding_dim "
                         f"{embedding_dim} does not apply")


class AlexNetBNNetwork(AlexNetBN):
    """Registry ``alexnet_bn``: :class:`AlexNetBN` (``hidden`` / ``batch_norm`` do not apply)."""

    def __init__(self, input_shape: Shape = (3, 224, 224), embedding_dim: Optional[int] = None, hidden=None,
                 batch_norm=None, sobel: bool = True, num_classes: Optional[int] = None,
                 first_stride: Optional[int] = None):
        _check_width("alexnet_bn", embedding_dim, 4096)
        super().__init__(input_shape, sobel, num_classes, first_stride)


class VGG16BNNetwork(VGG16BN):
    """Registry ``vgg16_bn``: :class:`VGG16BN` (``hidden`` / ``batch_norm`` do not apply)."""

    def __init__(self, input_shape: Shape = (3, 224, 224), embedding_dim: Optional[int] = None, hidden=None,
                 batch_norm=None, sobel: bool = True, num_classes: Optional[int] = None):
        _check_width("vgg16_bn", embedding_dim, 4096)
        super().__init__(input_shape, sobel, num_classes)


class SmallConvNetwork(SmallConvNet):
    """Registry ``dc_small``: :class:`SmallConvNet` with ``embedding_dim`` as its ``fc`` width."""

    def __init__(self, input_shape: Shape = (1, 32, 32), embedding_dim: Optional[int] = None, hidden=None,
                 batch_norm=None, sobel: bool = True, num_classes: Optional[int] = None,
                 channels: Sequence[int] = (24, 64, 96, 96, 64), fc: Optional[int] = None):
        super().__init__(input_shape, sobel, num_classes, channels, fc or embedding_dim or 256)


class DCResNet18Network(DCResNet18):
    """Registry ``dc_resnet18``: :class:`DCResNet18` with ``embedding_dim`` as its ``fc`` width."""

    def __init__(self, input_shape: Shape = (3, 32, 32), embedding_dim: Optional[int] = None, hidden=None,
                 batch_norm=None, sobel: bool = True, num_classes: Optional[int] = None, fc: Optional[int] = None):
        super().__init__(input_shape, sobel, num_classes, fc or embedding_dim or 512)


__all__ = [
    "AlexNetBN",
    "DCResNet18",
    "DCResNet18Network",
    "AlexNetBNNetwork",
    "SmallConvNetwork",
    "VGG16BNNetwork",
    "DeepClusterNet",
    "SmallConvNet",
    "SobelFilter",
    "VGG16BN",
    "deepcluster_init_",
    "stack_output_shape",
]
