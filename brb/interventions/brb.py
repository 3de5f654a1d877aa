"""BRB as an intervention: at the start of epochs T, 2T, ... (never 0) a soft reset of the method's reset
blocks, reclustering of its centroids on the embedding of a subsample, and a reset of exactly the optimiser
state the method names for its centroids. Which parts run is the variant's (``brb.variant``).

Each part needs a capability the method declares (:mod:`brb.methods.base`): the soft reset its reset blocks
(:class:`HasResetBlocks`), reclustering its centroids (:class:`HasCentroids`) or a cluster head it re-seeds from
the new centroids (:class:`HasClusterHead`), the momentum reset its centroids' optimiser state. A part whose
capability a method lacks is an error at fit start, naming the part and the capability.
"""

from __future__ import annotations

import torch

from brb.config import BRBConfig
from brb.engine.loop import Engine, Hook
from brb.interventions.brb_ops import recluster, soft_reset, subsample_indices
from brb.methods.base import HasCentroids, HasClusterHead, HasResetBlocks

#: the capability each part of BRB needs of a method (reclustering: centroids, or a cluster head to re-seed)
NEEDS = {"soft_reset": (HasResetBlocks,), "recluster": (HasCentroids, HasClusterHead),
         "momentum_reset": (HasCentroids,)}


class BRB(Hook):
    def __init__(self, config: BRBConfig, seed: int, kmeans_backend: str = "sklearn"):
        self.config = config
        self.seed = seed
        self.kmeans_backend = kmeans_backend
        self.parts = config.parts()

    def due(self, epoch: int) -> bool:
        return epoch > 0 and epoch % self.config.interval == 0 and any(self.parts.values())

    def on_fit_start(self, engine: Engine) -> None:
        for part, on in self.parts.items():
            needs = NEEDS[part]
            if on and not isinstance(engine.method, needs):
                raise TypeError(
                    f"BRB's {part} needs a method declaring {' or '.join(n.__name__ for n in needs)}; "
                    f"{type(engine.method).__name__} does not (see brb/methods/base.py)"
                )

    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        if self.due(epoch):
            self.apply(engine.method, epoch)
            engine.history[-1]["brb"] = True  # the row of the state BRB was applied to

    def apply(self, method, epoch: int) -> None:
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
            if isinstance(method, HasCentroids):
                method.set_centroids(torch.from_numpy(centers))
            else:
                method.reseed_cluster_head(torch.from_numpy(centers))
        if self.parts["momentum_reset"]:
            method.reset_centroid_momentum(steps=b.reset_momentum_steps)
