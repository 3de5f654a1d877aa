"""Network registry. Every architecture exposes ``encoder``/``decoder`` (``decoder`` may be None),
``encode(x)``, ``forward(x) -> (z, reconstruction)`` and ``reset_layers(include_embedding)`` (the
layers BRB's soft reset may touch, in order from input to embedding)."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from brb.models.autoencoder import FeedForwardAutoencoder

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mlp": FeedForwardAutoencoder,
}


def build_model(arch: str, **kwargs) -> nn.Module:
    try:
        factory = ARCHITECTURES[arch]
    except KeyError:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}") from None
    return factory(**kwargs)


__all__ = ["ARCHITECTURES", "FeedForwardAutoencoder", "build_model"]
