"""DEC (Xie et al. 2016) and IDEC (Guo et al. 2017): KL(P ‖ Q) between a sharpened target P and Student-t soft
assignments Q of the embedding to learned centroids; IDEC adds the reconstruction term (its weight is set in
the registry entry, the trainer adds the term).
"""

from __future__ import annotations

import torch

from brb.methods.objective import CentroidObjective, squared_distances


def student_t_assignment(z: torch.Tensor, centroids: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """DEC soft assignment q_ij ∝ (1 + ||z_i − μ_j||² / α)^(−(α+1)/2), rows summing to one."""
    q = (1.0 + squared_distances(z, centroids) / alpha).pow(-(alpha + 1.0) / 2.0)
    return q / q.sum(dim=1, keepdim=True)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """DEC's sharpened target p_ij ∝ q_ij² / f_j with f_j = Σ_i q_ij."""
    weight = q.pow(2) / q.sum(dim=0, keepdim=True)
    return weight / weight.sum(dim=1, keepdim=True)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """KL(p ‖ q) of each row, averaged (``mean``) or summed (``sum``) over the batch."""
    rows = (p * (torch.log(p.clamp_min(1e-12)) - torch.log(q.clamp_min(1e-12)))).sum(dim=1)
    return rows.sum() if reduction == "sum" else rows.mean()


class DEC(CentroidObjective):
    """DEC: KL(P ‖ Q) between the sharpened target and the Student-t soft assignment."""

    def loss(self, z, z_aug, target):
        q = student_t_assignment(z, self.centroids, self.config.dec_alpha)
        p = target if target is not None else target_distribution(q).detach()
        reduction = self.config.kl_reduction
        loss = kl_divergence(p, q, reduction)
        if z_aug is not None:
            q_aug = student_t_assignment(z_aug, self.centroids, self.config.dec_alpha)
            loss = 0.5 * (loss + kl_divergence(p, q_aug, reduction))
        return loss

    def full_target(self, z):
        if self.config.target != "dataset":
            return None
        with torch.no_grad():
            return target_distribution(student_t_assignment(z, self.centroids, self.config.dec_alpha))


class IDEC(DEC):
    """IDEC: DEC's loss; the reconstruction term is added by the training loop (its weight is set)."""
