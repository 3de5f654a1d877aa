"""tk-uco's ``cnn_small`` backbone (Trosten et al., "Unsupervised companion objectives for deep clustering";
code: DanielTrosten/tk-uco, ``src/config/layers.py``: ``cnn_small`` and ``cnn_small_transposed``, built by the
TensorFlow code) as an autoencoder of this package's networks: registry name ``cnn_small``.

Backbone (padding ``valid``; shapes for a 1×28×28 input)::

    conv 5×5, 32 → ReLU                              conv0   32×24×24
    conv 5×5, 32 → BatchNorm → ReLU                  conv1   32×20×20   = out1 (companion output)
    max-pool 2
    conv 3×3, 32 → ReLU                              conv2   32×8×8
    conv 3×3, 32 → BatchNorm → ReLU → max-pool 2     conv3   32×3×3     = out2 (companion output)
    flatten                                                  288

Bottleneck (tk-uco's CDEC / ICDEC ``Bottleneck``): Dense ``embedding_dim`` (linear) = the embedding; Dense back
to the flattened size → ReLU, reshaped to the ``out2`` map = the decoder's input. Transposed decoder::

    upsample ×2 (nearest) → conv-transpose 3×3, 32 → ReLU → conv-transpose 3×3, 32 → BatchNorm → ReLU
    → upsample ×2 → conv-transpose 5×5, 32 → ReLU → conv-transpose 5×5, C (linear output)

(28: 3 → 6 → 8 → 10 → 20 → 24 → 28). Per side, an input of size S gives an ``out2`` map of size
s = ⌊(⌊(S − 8)/2⌋ − 4)/2⌋ and the decoder returns 4s + 16: the network needs S ≥ 20 and S divisible by 4
(20, 24, 28, 32, ..., 64, ...); other sizes raise a ValueError naming the input shape.

What the methods use:

* the DEC family (DEC, IDEC, DEC-UCO on this backbone = tk-uco's CDEC, ICDEC, CDEC-UCO): :meth:`CNNSmall.encode`
  (the bottleneck embedding), :meth:`CNNSmall.forward` / :meth:`CNNSmall.decode` (reconstruction through the
  bottleneck), :meth:`CNNSmall.intermediate` (its last entry is the embedding; ``companion_outputs`` names the
  maps the UCO terms use);
* DDC / DDC-UCO / DDC-AE: the clustering head reads the flattened ``out2`` map (``head_input``), DDC-AE
  reconstructs from that map directly with :meth:`CNNSmall.decode_features` (no bottleneck).

Initialisation as Keras's defaults (tk-uco's layers): Glorot-uniform weights (``xavier_uniform_``) and zero
biases for every convolution, transposed convolution and Dense layer (the convolutions before a BatchNorm keep
their bias, as Keras's ``use_bias=True``); BatchNorm weight 1, bias 0, momentum 0.99 in Keras's convention
(torch ``momentum=0.01``), eps 1e-3. Departure: Keras's BatchNorm keeps a moving average of the biased batch
variance, torch of the unbiased one, so evaluation-mode outputs differ slightly.

BRB's soft reset works on the four backbone blocks ``conv0`` … ``conv3`` (a Conv2d and its BatchNorm), and on
the ``embedding`` Dense when the embedding is included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from brb.models.blocks import RECONSTRUCTION, ResetBlocksMixin

#: Keras BatchNormalization defaults in torch's convention (Keras momentum 0.99 = torch 1 − 0.99)
BN_MOMENTUM = 0.01
BN_EPS = 1e-3
#: channels of every hidden convolution
WIDTH = 32
#: default size of the linear bottleneck (tk-uco's ``bottleneck_units``)
DEFAULT_EMBEDDING_DIM = 10
#: smallest input side the backbone reduces to a map of at least 1×1
MIN_SIZE = 20


def _out2_side(size: int) -> int:
    """Side of the ``out2`` map for an input side ``size`` (< 1 when the input is too small)."""
    pooled = (size - 8) // 2  # two 5×5 valid convolutions, max-pool 2
    return (pooled - 4) // 2  # two 3×3 valid convolutions, max-pool 2


def _decoded_side(side: int) -> int:
    """Side of the decoder's output for an ``out2`` map side ``side``."""
    return 2 * (2 * side + 4) + 8  # ×2, two 3×3 transposed, ×2, two 5×5 transposed


def feature_shape_of(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """The ``out2`` map shape (32, h, w) of one input of ``input_shape`` (C, H, W); a ValueError naming the shape
    when the input is not image-shaped, too small, or of a size the decoder cannot return to."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"cnn_small needs image inputs (C, H, W); got input shape {shape}")
    sides = shape[1:]
    if min(sides) < MIN_SIZE:
        raise ValueError(
            f"input shape {shape} is too small for cnn_small: height and width must be at least "
            f"{MIN_SIZE} (four valid convolutions and two 2×2 poolings leave less than 1×1)"
        )
    out = tuple(_out2_side(s) for s in sides)
    back = tuple(_decoded_side(s) for s in out)
    if back != sides:
        raise ValueError(
            f"cnn_small's decoder cannot return to input shape {shape}: the backbone's {out[0]}×{out[1]} "
            f"map decodes to {back[0]}×{back[1]}; height and width must be divisible by 4"
        )
    return (WIDTH, out[0], out[1])


def keras_init_(layer: nn.Module) -> nn.Module:
    """Glorot-uniform weight and zero bias (Keras's defaults) for a Linear / Conv2d / ConvTranspose2d ``layer``."""
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class ConvBlock(nn.Module):
    """A (transposed) convolution, its BatchNorm (or None) and a ReLU (or none, for the linear output layer)."""

    def __init__(self, layer: nn.Module, norm: Optional[nn.BatchNorm2d], relu: bool = True):
        super().__init__()
        self.layer = keras_init_(layer)
        self.norm = norm
        self.act = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer(x)
        if self.norm is not None:
            x = self.norm(x)
        return self.act(x)


def _norm(channels: int, batch_norm: bool) -> Optional[nn.BatchNorm2d]:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM) if batch_norm else None


class CNNSmall(ResetBlocksMixin, nn.Module):
    """tk-uco's ``cnn_small`` backbone with a linear bottleneck and the transposed decoder (module notes above).

    ``input_shape``: one sample's shape (C, H, W) (H, W ≥ 20 and divisible by 4); ``embedding_dim``: size of
    the bottleneck (None: 10, tk-uco's); ``batch_norm``: None or True = the BatchNorm layers of ``conv1``,
    ``conv3`` and the decoder's second transposed convolution, False = none. ``hidden`` is accepted for the
    common constructor call and must be None (the layers are fixed).

    Modules: ``encoder`` (ModuleDict ``conv0`` … ``conv3`` of :class:`ConvBlock` s; max-pooling after ``conv1``
    and ``conv3``), ``embedding`` (Linear flat → d), ``expand`` (Linear d → flat, ReLU), ``decoder``
    (Sequential of upsampling and :class:`ConvBlock` s). ``feature_shape`` is the ``out2`` map's (32, h, w),
    ``flat_dim`` its size.
    """

    ARCH_FIELDS = ("input_shape", "embedding_dim", "batch_norm")
    provides = frozenset({RECONSTRUCTION})
    #: the intermediate outputs tk-uco's UCO terms use (the backbone's ``out`` markers)
    companion_outputs = ("out1", "out2")
    #: the intermediate output DDC's clustering head reads (flattened): the backbone's output map
    head_input = "out2"

    def __init__(
        self,
        input_shape: Sequence[int],
        embedding_dim: Optional[int] = None,
        hidden: Optional[Sequence[int]] = None,
        batch_norm: Optional[bool] = None,
    ):
        super().__init__()
        if hidden is not None:
            raise ValueError(f"cnn_small's layers are fixed; hidden={list(hidden)} is not used (leave model.hidden unset)")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.feature_shape = feature_shape_of(self.input_shape)
        self.flat_dim = self.feature_shape[0] * self.feature_shape[1] * self.feature_shape[2]
        self.embedding_dim = DEFAULT_EMBEDDING_DIM if embedding_dim is None else int(embedding_dim)
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be positive, got {embedding_dim}")
        self.batch_norm = True if batch_norm is None else bool(batch_norm)
        channels, bn = self.input_shape[0], self.batch_norm

        self.encoder = nn.ModuleDict(
            {
                "conv0": ConvBlock(nn.Conv2d(channels, WIDTH, 5), None),
                "conv1": ConvBlock(nn.Conv2d(WIDTH, WIDTH, 5), _norm(WIDTH, bn)),
                "conv2": ConvBlock(nn.Conv2d(WIDTH, WIDTH, 3), None),
                "conv3": ConvBlock(nn.Conv2d(WIDTH, WIDTH, 3), _norm(WIDTH, bn)),
            }
        )
        self.pool = nn.MaxPool2d(2)
        self.embedding = keras_init_(nn.Linear(self.flat_dim, self.embedding_dim))
        self.expand = keras_init_(nn.Linear(self.embedding_dim, self.flat_dim))
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            ConvBlock(nn.ConvTranspose2d(WIDTH, WIDTH, 3), None),
            ConvBlock(nn.ConvTranspose2d(WIDTH, WIDTH, 3), _norm(WIDTH, bn)),
            nn.Upsample(scale_factor=2, mode="nearest"),
            ConvBlock(nn.ConvTranspose2d(WIDTH, WIDTH, 5), None),
            ConvBlock(nn.ConvTranspose2d(WIDTH, channels, 5), None, relu=False),
        )

    # --- backbone ------------------------------------------------------------------------------------------
    def _backbone(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """The backbone's named maps: conv0, out1 (= conv1's output), conv2, out2 (= conv3's output, pooled)."""
        x = x.reshape(len(x), *self.input_shape)
        enc = self.encoder
        h0 = enc["conv0"](x)
        out1 = enc["conv1"](h0)
        h2 = enc["conv2"](self.pool(out1))
        out2 = self.pool(enc["conv3"](h2))
        return [("conv0", h0), ("out1", out1), ("conv2", h2), ("out2", out2)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's output map ``out2``, (N, 32, h, w); ``x`` flat (N, C·H·W) or shaped (N, C, H, W)."""
        return self._backbone(x)[-1][1]

    def flat_features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``out2`` map flattened, (N, ``flat_dim``)."""
        f = self.features(x)
        return f.reshape(len(f), -1)

    # --- autoencoder ---------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck embedding (N, ``embedding_dim``): the linear Dense on the flattened ``out2`` map."""
        return self.embedding(self.flat_features(x))

    def decode_features(self, f: torch.Tensor) -> torch.Tensor:
        """Reconstruction (N, C, H, W) of ``out2`` maps ``f`` ((N, 32, h, w) or flattened) by the transposed
        decoder alone (no bottleneck; tk-uco's DDC-AE)."""
        return self.decoder(f.reshape(len(f), *self.feature_shape))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction (N, C, H, W) of embeddings ``z``: the bottleneck's Dense back to the ``out2`` map (ReLU),
        then the transposed decoder."""
        return self.decode_features(F.relu(self.expand(z)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedding (N, d), reconstruction flattened to (N, C·H·W))."""
        z = self.encode(x)
        rec = self.decode(z)
        return z, rec.reshape(len(rec), -1)

    def intermediate(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """The backbone's maps, input side first, each (N, C, H, W): ``conv0``, ``out1`` (conv1 → BatchNorm →
        ReLU), ``conv2``, ``out2`` (conv3 → BatchNorm → ReLU → max-pool); then ``embedding``, equal to
        :meth:`encode` (one pass)."""
        outs = self._backbone(x)
        out2 = outs[-1][1]
        return [*outs, ("embedding", self.embedding(out2.reshape(len(out2), -1)))]

    def named_reset_blocks(self, include_embedding: bool = False) -> list[tuple[str, list[nn.Module]]]:
        """Backbone blocks ``conv0`` … ``conv3`` (a Conv2d and its BatchNorm, where it has one), input side first;
        with ``include_embedding`` also ``embedding`` (the bottleneck's Linear)."""
        blocks = [(name, [b.layer] + ([b.norm] if b.norm is not None else [])) for name, b in self.encoder.items()]
        if include_embedding:
            blocks.append(("embedding", [self.embedding]))
        return blocks
