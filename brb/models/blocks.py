"""What every network offers BRB's soft reset: named blocks of layers, input side first."""

from __future__ import annotations

import torch.nn as nn

#: a network with a decoder: ``forward(x) -> (z, flat reconstruction)``, ``decode(z)``
RECONSTRUCTION = "reconstruction"
#: a network with a projector for a contrastive loss: ``project(z)``
PROJECTION = "projection"


def provides(network, capability: str) -> bool:
    """Whether ``network`` (a network or its class) declares ``capability`` in its class attribute ``provides``."""
    cls = network if isinstance(network, type) else type(network)
    return capability in getattr(cls, "provides", frozenset())


def linear_blocks(layers: nn.Sequential) -> list[list[nn.Module]]:
    """The Linear layers of ``layers``, each with the BatchNorm that follows it; the last one is the output."""
    blocks: list[list[nn.Module]] = []
    for m in layers:
        if isinstance(m, nn.Linear):
            blocks.append([m])
        elif isinstance(m, nn.BatchNorm1d):
            blocks[-1].append(m)
    return blocks


def sequential_outputs(layers: nn.Sequential, x, block_type, prefix: str) -> list[tuple]:
    """Run ``x`` through ``layers`` and return the output of every block (a layer of ``block_type`` and the
    layers up to the next one), named ``{prefix}0``, ``{prefix}1``, ..."""
    outputs, n = [], 0
    for i, m in enumerate(layers):
        x = m(x)
        following = layers[i + 1] if i + 1 < len(layers) else None
        if following is None or isinstance(following, block_type):
            outputs.append((f"{prefix}{n}", x))
            n += 1
    return outputs


class ResetBlocksMixin:
    """``reset_blocks`` / ``reset_layers`` derived from the network's ``named_reset_blocks``, and
    ``arch_kwargs`` (the constructor arguments a checkpoint stores) from its ``ARCH_FIELDS`` attributes."""

    ARCH_FIELDS: tuple[str, ...] = ()
    #: what the network offers beyond ``encode``: RECONSTRUCTION and/or PROJECTION
    provides: frozenset = frozenset()

    def arch_kwargs(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in ((k, getattr(self, k)) for k in self.ARCH_FIELDS)}

    def named_reset_blocks(self, include_embedding: bool = False) -> list[tuple[str, list[nn.Module]]]:
        raise NotImplementedError

    def reset_blocks(self, include_embedding: bool = False) -> list[list[nn.Module]]:
        return [block for _, block in self.named_reset_blocks(include_embedding)]

    def reset_layers(self, include_embedding: bool = False) -> list[nn.Module]:
        """The modules of the reset blocks, flattened."""
        return [m for block in self.reset_blocks(include_embedding) for m in block]
