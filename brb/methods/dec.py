"""DEC (Xie et al. 2016) and IDEC (Guo et al. 2017): KL(P ‖ Q) between a sharpened target P and Student-t soft
assignments Q of the embedding to learned centroids; IDEC adds the reconstruction term (its weight is set in
the registry entry, the trainer adds the term).
"""

from __future__ import annotations

import torch

from brb.losses.kernels import uco_loss
from brb.methods.objective import CentroidObjective, squared_distances
from brb.methods.options import DECOptions, DECUCOOptions, IDECOptions


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

    Options = DECOptions

    def loss(self, z, z_aug, target):
        q = student_t_assignment(z, self.centroids, self.options.dec_alpha)
        p = target if target is not None else target_distribution(q).detach()
        reduction = self.options.kl_reduction
        loss = kl_divergence(p, q, reduction)
        if z_aug is not None:
            q_aug = student_t_assignment(z_aug, self.centroids, self.options.dec_alpha)
            loss = 0.5 * (loss + kl_divergence(p, q_aug, reduction))
        return loss

    def full_target(self, z):
        if self.options.target != "dataset":
            return None
        with torch.no_grad():
            return target_distribution(student_t_assignment(z, self.centroids, self.options.dec_alpha))


class IDEC(DEC):
    """IDEC: DEC's loss; the reconstruction term is added by the training loop (its weight is set)."""

    Options = IDECOptions


class DECUCO(DEC):
    """tk-uco's DEC-UCO: DEC's KL + λ Σ_l w_l d_cs(Q, K^(l)) on the network's companion outputs, Q the Student-t
    soft assignments (not detached unless ``uco_assignment_gradient`` is off)."""

    Options = DECUCOOptions

    @property
    def uses_companions(self) -> bool:
        return self.options.uco_weight > 0

    def companion_loss(self, z, layers):
        o = self.options
        q = student_t_assignment(z, self.centroids, o.dec_alpha)
        q = q if o.uco_assignment_gradient else q.detach()
        return uco_loss(q, layers, o.uco_layer_weights, o.uco_kernel, o.rel_sigma)["total"]
