"""Capabilities a method declares, as protocols it inherits from (declared, not sniffed): an intervention or a
stage asks ``isinstance(method, HasCentroids)`` and gets the answer the method's author gave.

- :class:`HasResetBlocks`: named blocks of layers that a soft reset may touch, input side first.
- :class:`HasCentroids`: centroids that can be replaced (reclustering) and whose optimiser state can be reset.
- :class:`HasClusterHead`: a cluster head (logits over clusters) that can be re-seeded from centroids.
- :class:`HasMomentumPairs`: (online, target) network pairs kept by an exponential moving average; their state
  is in the resume checkpoint and a momentum reset names them.

Networks declare what they provide in ``provides`` (:data:`~brb.models.blocks.RECONSTRUCTION`: a decoder;
:data:`~brb.models.blocks.PROJECTION`: a projector for a contrastive loss), defined with the networks; the
registry's network tags say the same and a test checks they agree.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn as nn

from brb.models.blocks import PROJECTION, RECONSTRUCTION, provides  # noqa: F401  (re-exported)


@runtime_checkable
class HasResetBlocks(Protocol):
    def named_reset_blocks(self, include_embedding: bool = False) -> list[tuple[str, list[nn.Module]]]:
        """The blocks a soft reset may touch, input side first; the last is the embedding layer (only with
        ``include_embedding``)."""
        ...


@runtime_checkable
class HasCentroids(Protocol):
    n_clusters: int

    def n_train(self) -> int:
        """Number of training samples (reclustering draws its subsample from them)."""
        ...

    def embed_rows(self, index: np.ndarray) -> torch.Tensor:
        """Embedding (eval mode) of the training rows ``index``."""
        ...

    def set_centroids(self, centroids: torch.Tensor) -> None: ...

    def reset_centroid_momentum(self, steps: bool) -> None:
        """Zero exactly the optimiser state of the centroids (``steps``: their step counts too)."""
        ...


@runtime_checkable
class HasClusterHead(Protocol):
    n_clusters: int

    def n_train(self) -> int: ...

    def embed_rows(self, index: np.ndarray) -> torch.Tensor: ...

    def reseed_cluster_head(self, centroids: torch.Tensor) -> None:
        """Re-initialise the cluster head so that its argmax is the nearest of ``centroids``."""
        ...


@runtime_checkable
class HasMomentumPairs(Protocol):
    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) pairs; the target follows the online network by EMA."""
        ...
