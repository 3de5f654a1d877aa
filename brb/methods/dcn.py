"""DCN (Yang et al. 2017): k-means loss with hard assignments + reconstruction; centroids follow per-cluster
means (running counts, or the public BRB code's fixed step), after each step or in a pass after each epoch."""

from __future__ import annotations

import torch

from brb.config import ClusterConfig
from brb.methods.objective import CentroidObjective
from brb.methods.options import DCNOptions


class DCN(CentroidObjective):
    """DCN: k-means loss ‖z − μ_a(z)‖² with hard assignments; centroids follow per-cluster means.

    ``dcn_loss_norm`` sets the loss's normaliser (N·K as the BRB code, or N); ``dcn_update`` the centroid
    step (running counts, or the BRB code's fixed step per batch); ``dcn_update_when`` whether the training
    loop calls :meth:`update_centroids` after every optimiser step or in a separate pass after each epoch.
    """

    learned_centroids = False
    Options = DCNOptions

    def __init__(self, config: ClusterConfig, centroids: torch.Tensor):
        super().__init__(config, centroids)
        self.register_buffer("counts", torch.full((centroids.shape[0],), float(self.options.dcn_count_init)))

    @property
    def updates_per_step(self) -> bool:
        return self.options.dcn_update_when == "step"

    def kmeans_term(self, z: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """Σ_i ‖z_i − μ_i‖² / N, further divided by K with ``dcn_loss_norm: samples_clusters``."""
        loss = (z - mu).pow(2).sum(dim=1).mean()
        return loss / self.n_clusters if self.options.dcn_loss_norm == "samples_clusters" else loss

    def loss(self, z, z_aug, target):
        assign = self.predict(z.detach())
        mu = self.centroids[assign]
        loss = self.kmeans_term(z, mu)
        if z_aug is not None:  # the augmented view is pulled to its clean view's centroid
            loss = 0.5 * (loss + self.kmeans_term(z_aug, mu))
        return loss

    @property
    def updates_after_epoch(self) -> bool:
        return not self.updates_per_step

    def after_step(self, z):
        if self.updates_per_step:
            self.update_centroids(z)

    @torch.no_grad()
    def update_centroids(self, z: torch.Tensor) -> None:
        """Assign the batch ``z`` to the nearest centroids and move each centroid hit by it."""
        assign = self.predict(z)
        n = torch.bincount(assign, minlength=self.n_clusters).to(z.dtype)
        sums = torch.zeros_like(self.centroids).index_add_(0, assign, z)
        hit = (n > 0)[:, None]
        if self.options.dcn_update == "counts":
            # Sequential updates μ ← μ − (1/c)(μ − z_i), c ← c + 1 for each assigned point equal the
            # running mean: μ ← (c·μ + Σ z_i) / (c + n).
            new = (self.counts[:, None] * self.centroids + sums) / (self.counts + n)[:, None]
            self.centroids.copy_(torch.where(hit, new, self.centroids))
            self.counts += n
        else:
            # Public BRB code (`_compute_centroids_mb`): once per batch, each cluster hit by it moves towards
            # the mean of its batch points, μ ← (1 − η)·μ + η·mean, with η = 1/(count + 1); the counts never
            # grow there, so η = 1/(count_init + 1) throughout.
            eta = 1.0 / (self.counts + 1.0)
            mean = sums / n.clamp_min(1)[:, None]
            new = (1.0 - eta)[:, None] * self.centroids + eta[:, None] * mean
            self.centroids.copy_(torch.where(hit, new, self.centroids))

    def reset_momentum(self, optimizer, steps: bool = False):
        """DCN's centroids are not optimised by Adam; their 'momentum' is the running count."""
        self.counts.fill_(float(self.options.dcn_count_init))
