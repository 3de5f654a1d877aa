"""Clustering objectives for the shared training loop: DEC, IDEC and DCN differ only here.

An objective holds the centroids (a learned ``nn.Parameter`` for DEC/IDEC, a buffer updated from
running counts for DCN), computes its clustering loss on the clean embedding and, with augmentation
invariance, on the augmented one, and may update centroids after each optimiser step.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from brb.config import ClusterConfig


def squared_distances(z: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    return torch.cdist(z, centroids).pow(2)


def student_t_assignment(z: torch.Tensor, centroids: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """DEC soft assignment q_ij ∝ (1 + ||z_i − μ_j||² / α)^(−(α+1)/2), rows summing to one."""
    q = (1.0 + squared_distances(z, centroids) / alpha).pow(-(alpha + 1.0) / 2.0)
    return q / q.sum(dim=1, keepdim=True)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """DEC's sharpened target p_ij ∝ q_ij² / f_j with f_j = Σ_i q_ij."""
    weight = q.pow(2) / q.sum(dim=0, keepdim=True)
    return weight / weight.sum(dim=1, keepdim=True)


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) averaged over the batch."""
    return (p * (torch.log(p.clamp_min(1e-12)) - torch.log(q.clamp_min(1e-12)))).sum(dim=1).mean()


class CentroidObjective(nn.Module):
    """Base class; subclasses set ``learned_centroids`` and implement :meth:`loss`."""

    learned_centroids = True

    def __init__(self, config: ClusterConfig, centroids: torch.Tensor):
        super().__init__()
        self.config = config
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


class DEC(CentroidObjective):
    """DEC: KL(P ‖ Q) between the sharpened target and the Student-t soft assignment."""

    def loss(self, z, z_aug, target):
        q = student_t_assignment(z, self.centroids, self.config.dec_alpha)
        p = target if target is not None else target_distribution(q).detach()
        loss = kl_divergence(p, q)
        if z_aug is not None:
            q_aug = student_t_assignment(z_aug, self.centroids, self.config.dec_alpha)
            loss = 0.5 * (loss + kl_divergence(p, q_aug))
        return loss

    def full_target(self, z):
        if self.config.target != "dataset":
            return None
        with torch.no_grad():
            return target_distribution(student_t_assignment(z, self.centroids, self.config.dec_alpha))


class IDEC(DEC):
    """IDEC: DEC's loss; the reconstruction term is added by the training loop (its weight is set)."""


class DCN(CentroidObjective):
    """DCN: k-means loss ‖z − μ_a(z)‖² with hard assignments; centroids follow per-cluster means.

    ``dcn_loss_norm`` sets the loss's normaliser (N·K as the BRB code, or N); ``dcn_update`` the centroid
    step (running counts, or the BRB code's fixed step per batch); ``dcn_update_when`` whether the training
    loop calls :meth:`update_centroids` after every optimiser step or in a separate pass after each epoch.
    """

    learned_centroids = False

    def __init__(self, config: ClusterConfig, centroids: torch.Tensor):
        super().__init__(config, centroids)
        self.register_buffer("counts", torch.full((centroids.shape[0],), float(config.dcn_count_init)))

    @property
    def updates_per_step(self) -> bool:
        return self.config.dcn_update_when == "step"

    def kmeans_term(self, z: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """Σ_i ‖z_i − μ_i‖² / N, further divided by K with ``dcn_loss_norm: samples_clusters``."""
        loss = (z - mu).pow(2).sum(dim=1).mean()
        return loss / self.n_clusters if self.config.dcn_loss_norm == "samples_clusters" else loss

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
        if self.config.dcn_update == "counts":
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
        self.counts.fill_(float(self.config.dcn_count_init))
