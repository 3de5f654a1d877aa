"""The paper's feed-forward autoencoder: encoder [D, 1024, 512, 256, K] with BatchNorm + ReLU, mirrored decoder."""

from __future__ import annotations

import torch
import torch.nn as nn

from brb.models.blocks import RECONSTRUCTION, ResetBlocksMixin, linear_blocks, sequential_outputs


def _mlp(widths: list[int], batch_norm: bool) -> nn.Sequential:
    """Linear layers between consecutive widths; BatchNorm + ReLU after all but the last."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(widths) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(d_out))
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class FeedForwardAutoencoder(ResetBlocksMixin, nn.Module):
    """Fully connected autoencoder on flattened inputs.

    ``input_shape`` is the shape of one sample (``(C, H, W)`` or ``(D,)``); inputs are flattened inside
    :meth:`encode`, and reconstructions are returned flat, to be compared with the flattened input.
    """

    ARCH_FIELDS = ("input_shape", "embedding_dim", "hidden", "batch_norm")
    provides = frozenset({RECONSTRUCTION})

    def __init__(self, input_shape, embedding_dim: int, hidden=(1024, 512, 256), batch_norm: bool = True):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.input_dim = 1
        for s in self.input_shape:
            self.input_dim *= s
        self.embedding_dim = int(embedding_dim)
        self.hidden = [int(h) for h in hidden]
        self.batch_norm = bool(batch_norm)
        widths = [self.input_dim, *self.hidden, self.embedding_dim]
        self.encoder = _mlp(widths, batch_norm)
        self.decoder = _mlp(widths[::-1], batch_norm)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.reshape(len(x), -1))

    def intermediate(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """The encoder's outputs block by block (``block0``, ...: after its non-linearity; the last is the
        embedding), for losses on hidden layers."""
        return sequential_outputs(self.encoder, x.reshape(len(x), -1), nn.Linear, "block")

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return z, self.decoder(z)

    def named_reset_blocks(self, include_embedding: bool = False) -> list[tuple[str, list[nn.Module]]]:
        """Encoder blocks ``block0``, ``block1``, ... (a Linear and its BatchNorm), input side first; the last
        block is the embedding layer."""
        blocks = linear_blocks(self.encoder)
        blocks = blocks if include_embedding else blocks[:-1]
        return [(f"block{i}", block) for i, block in enumerate(blocks)]
