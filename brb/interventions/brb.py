"""BRB as an intervention: at the start of epochs T, 2T, ... (never 0) a soft reset of the method's reset
blocks, reclustering of its centroids on the embedding of a subsample, and a reset of exactly the optimiser
state the method names for its centroids. Which parts run is the variant's (``brb.variant``).

Any method that declares the capabilities of :class:`SupportsBRB` can take it (today: the centroid-based
clustering methods DEC, IDEC, DCN on every network). A part whose capability a method lacks is an error.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn as nn

from brb.config import BRBConfig
from brb.engine.loop import Engine, Hook
from brb.interventions.brb_ops import recluster, soft_reset, subsample_indices


@runtime_checkable
class SupportsBRB(Protocol):
    """What BRB needs of a method: its named reset blocks (input side first), the number of training samples
    and clusters, the embedding of some training rows, and ways to replace the centroids and to reset their
    optimiser state."""

    n_clusters: int

    def named_reset_blocks(self, include_embedding: bool = False) -> list[tuple[str, list[nn.Module]]]: ...

    def n_train(self) -> int: ...

    def embed_rows(self, index: np.ndarray) -> torch.Tensor: ...

    def set_centroids(self, centroids: torch.Tensor) -> None: ...

    def reset_centroid_momentum(self, steps: bool) -> None: ...


class BRB(Hook):
    def __init__(self, config: BRBConfig, seed: int, kmeans_backend: str = "sklearn"):
        self.config = config
        self.seed = seed
        self.kmeans_backend = kmeans_backend
        self.parts = config.parts()

    def due(self, epoch: int) -> bool:
        return epoch > 0 and epoch % self.config.interval == 0 and any(self.parts.values())

    def on_fit_start(self, engine: Engine) -> None:
        if any(self.parts.values()) and not isinstance(engine.method, SupportsBRB):
            raise TypeError(f"BRB needs a method with reset blocks and centroids; {type(engine.method).__name__} has not")

    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        if self.due(epoch):
            self.apply(engine.method, epoch)
            engine.history[-1]["brb"] = True  # the row of the state BRB was applied to

    def apply(self, method: SupportsBRB, epoch: int) -> None:
        b = self.config
        if self.parts["soft_reset"]:
            named = method.named_reset_blocks(include_embedding=b.reset_embedding)
            for (_, block), alpha in zip(named, b.block_alphas([name for name, _ in named])):
                soft_reset(block, alpha, init=b.reset_init, batchnorm=b.reset_batchnorm)
        if self.parts["recluster"]:
            idx = subsample_indices(method.n_train(), b.subsample, self.seed * 100003 + epoch, b.subsample_mode)
            z = method.embed_rows(idx)
            centers = recluster(z, method.n_clusters, b.recluster_method, self.seed + epoch, b.kmeans_n_init,
                                backend=self.kmeans_backend)
            method.set_centroids(torch.from_numpy(centers))
        if self.parts["momentum_reset"]:
            method.reset_centroid_momentum(steps=b.reset_momentum_steps)
