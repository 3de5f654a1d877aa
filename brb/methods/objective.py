"""The contract of a centroid-based clustering method (DEC, IDEC, DCN, DKM, ...): an objective that holds the
centroids (a learned ``nn.Parameter``, or a buffer it updates itself), computes its clustering loss on the clean
embedding and, with augmentation invariance, on the augmented one, and may move its centroids after each step
or in a pass after each epoch. :class:`brb.methods.centroid.ClusterTrainer` trains any of them.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from brb.config import ClusterConfig
from brb.methods.options import CentroidOptions, MethodOptions


def squared_distances(z: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    return torch.cdist(z, centroids).pow(2)


class CentroidObjective(nn.Module):
    """Base class; subclasses set ``learned_centroids`` and implement :meth:`loss`."""

    learned_centroids = True
    #: the method's typed options class (brb/methods/options.py); its registry entry names the same class
    Options: type[MethodOptions] = CentroidOptions

    def __init__(self, config: ClusterConfig, centroids: torch.Tensor):
        super().__init__()
        self.config = config
        #: this run's options, validated by the method's own class
        self.options = self.Options.model_validate({key: getattr(config, key) for key in self.Options.model_fields})
        if self.learned_centroids:
            self.centroids = nn.Parameter(centroids.clone())
        else:
            self.register_buffer("centroids", centroids.clone())

    @property
    def n_clusters(self) -> int:
        return self.centroids.shape[0]

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        return squared_distances(z, self.centroids.detach()).argmin(dim=1)

    def set_centroids(self, centroids: torch.Tensor) -> None:
        with torch.no_grad():
            self.centroids.copy_(centroids.to(self.centroids))

    def loss(self, z: torch.Tensor, z_aug: Optional[torch.Tensor], target: Optional[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    @property
    def uses_companions(self) -> bool:
        """True when the loss adds companion terms on intermediate outputs (:meth:`companion_loss`; tk-uco)."""
        return False

    def companion_loss(self, z: torch.Tensor, layers: list[torch.Tensor]) -> torch.Tensor:
        """Companion terms of the clean embedding ``z`` and the network's intermediate outputs ``layers``
        (weighted by the method's ``uco_weight`` in the training loop)."""
        raise NotImplementedError

    def full_target(self, z: torch.Tensor) -> Optional[torch.Tensor]:
        """Target over the whole dataset (DEC with ``target='dataset'``), None if not used."""
        return None

    def start_epoch(self, epoch: int) -> None:
        """Called at the start of every (0-indexed) epoch, after any intervention (e.g. an annealed schedule)."""

    def after_step(self, z: torch.Tensor) -> None:
        """Called after each optimiser step with the batch's clean embedding (detached)."""

    @property
    def updates_after_epoch(self) -> bool:
        """True when the training loop must feed :meth:`update_centroids` the clean training data, batch by
        batch, in eval mode and without gradient, after each epoch's gradient pass."""
        return False

    def update_centroids(self, z: torch.Tensor) -> None:
        """One batch of the after-epoch centroid pass (see :attr:`updates_after_epoch`)."""

    def reset_momentum(self, optimizer: torch.optim.Optimizer, steps: bool = False) -> None:
        """Zero the optimiser moments of the centroids, nothing else."""
        state = optimizer.state.get(self.centroids, {})
        for key, value in state.items():
            if not torch.is_tensor(value):
                continue
            if key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"):
                value.zero_()
            elif key == "step" and steps:
                value.zero_()


