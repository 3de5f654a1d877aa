"""Network registry. Every architecture exposes ``encoder``/``decoder`` (``decoder`` may be None),
``encode(x)``, ``forward(x) -> (z, reconstruction)`` (reconstruction None without a decoder),
``named_reset_blocks(include_embedding)`` (the named blocks BRB's soft reset may touch, input side first),
``arch_kwargs()`` (its constructor arguments) and, for contrastive networks, ``project(z)``.

Networks are entries of the project registry (``brb/registry.py``): ``"module:class"`` strings resolved on
use, so the registry can be read without torch.
"""

from __future__ import annotations

from brb.registry import REGISTRY

#: network name -> "module:class", a view of the ``network`` entries of the registry (brb/registry.py)
ARCHITECTURES: dict[str, str] = {e.name: e.target for e in REGISTRY.entries("network")}


def architecture(name: str):
    return REGISTRY.load("network", name)


def build_model(arch: str, **kwargs):
    return architecture(arch)(**kwargs)


__all__ = ["ARCHITECTURES", "architecture", "build_model"]
