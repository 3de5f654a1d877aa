"""What every network offers BRB's soft reset: named blocks of layers, input side first."""

from __future__ import annotations

import torch.nn as nn


def linear_blocks(layers: nn.Sequential) -> list[list[nn.Module]]:
    """The Linear layers of ``layers``, each with the BatchNorm that follows it; the last one is the output."""
    blocks: list[list[nn.Module]] = []
    for m in layers:
        if isinstance(m, nn.Linear):
            blocks.append([m])
        elif isinstance(m, nn.BatchNorm1d):
            blocks[-1].append(m)
    return blocks


class ResetBlocksMixin:
    """``reset_blocks`` / ``reset_layers`` derived from the network's ``named_reset_blocks``, and
    ``arch_kwargs`` (the constructor arguments a checkpoint stores) from its ``ARCH_FIELDS`` attributes."""

    ARCH_FIELDS: tuple[str, ...] = ()

    def arch_kwargs(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in ((k, getattr(self, k)) for k in self.ARCH_FIELDS)}

    def named_reset_blocks(self, include_embedding: bool = False) -> list[tuple[str, list[nn.Module]]]:
        raise NotImplementedError

    def reset_blocks(self, include_embedding: bool = False) -> list[list[nn.Module]]:
        return [block for _, block in self.named_reset_blocks(include_embedding)]

    def reset_layers(self, include_embedding: bool = False) -> list[nn.Module]:
        """The modules of the reset blocks, flattened."""
        return [m for block in self.reset_blocks(include_embedding) for m in block]
