"""Network registry. Every architecture exposes ``encoder``/``decoder`` (``decoder`` may be None),
``encode(x)``, ``forward(x) -> (z, reconstruction)`` (reconstruction None without a decoder),
``named_reset_blocks(include_embedding)`` (the named blocks BRB's soft reset may touch, input side first),
``arch_kwargs()`` (its constructor arguments) and, for contrastive networks, ``project(z)``.

Entries are ``"module:class"`` strings resolved on use, so the registry can be read without torch.
"""

from __future__ import annotations

import importlib

ARCHITECTURES: dict[str, str] = {
    "mlp": "brb.models.autoencoder:FeedForwardAutoencoder",
    "resnet18": "brb.models.resnet:ResNetEmbedding",
}


def architecture(name: str):
    try:
        module, cls = ARCHITECTURES[name].split(":")
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}") from None
    return getattr(importlib.import_module(module), cls)


def build_model(arch: str, **kwargs):
    return architecture(arch)(**kwargs)


__all__ = ["ARCHITECTURES", "architecture", "build_model"]
