"""The paper's feed-forward autoencoder: encoder [D, 1024, 512, 256, K] with BatchNorm + ReLU, mirrored decoder."""

from __future__ import annotations

import torch
import torch.nn as nn


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


class FeedForwardAutoencoder(nn.Module):
    """Fully connected autoencoder on flattened inputs.

    ``input_shape`` is the shape of one sample (``(C, H, W)`` or ``(D,)``); inputs are flattened inside
    :meth:`encode`, and reconstructions are returned flat, to be compared with the flattened input.
    """

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

    def arch_kwargs(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "embedding_dim": self.embedding_dim,
            "hidden": self.hidden,
            "batch_norm": self.batch_norm,
        }

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.reshape(len(x), -1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return z, self.decoder(z)

    def reset_blocks(self, include_embedding: bool = False) -> list[list[nn.Module]]:
        """Encoder blocks (a Linear and its BatchNorm), input side first; the last block is the embedding."""
        blocks: list[list[nn.Module]] = []
        for m in self.encoder:
            if isinstance(m, nn.Linear):
                blocks.append([m])
            elif isinstance(m, nn.BatchNorm1d):
                blocks[-1].append(m)
        return blocks if include_embedding else blocks[:-1]

    def reset_layers(self, include_embedding: bool = False) -> list[nn.Module]:
        """The modules of :meth:`reset_blocks`, flattened."""
        return [m for block in self.reset_blocks(include_embedding) for m in block]
