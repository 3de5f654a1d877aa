"""Deep k-Means (DKM; Moradi Fard, Thonet, Gaussier 2020): a differentiable k-means loss on the embedding,
learned jointly with the autoencoder's reconstruction and the centroids (all by the optimiser).

Loss of a batch: mean_i Σ_k ‖z_i − μ_k‖² · softmax_k(−α‖z_i − μ_k‖²), a soft assignment with inverse
temperature α. The authors run two settings: with a pretrained autoencoder and k-means-initialised centroids, a
constant α = 1000 (``cluster.dkm_schedule: pretrained``, the default: brb starts from k-means centroids); from
scratch, α annealed as α_1 = 0.1, α_{n+1} = 2^{1/log(n+1)²} · α_n, 40 values, 5 epochs each, the last value kept
after 200 epochs (``cluster.dkm_schedule: annealed``). A small α from k-means centroids pulls every centroid to
the data mean (measured on digits: ACC 0.79 → 0.18 in 20 epochs), which is why the authors do not anneal after
pretraining.
With augmentation invariance the augmented view is weighted by its clean view's soft assignment. Prediction:
the nearest centroid.

The authors sum the reconstruction error over the D input features; brb's reconstruction term is the mean
over features, so their λ corresponds to ``cluster.cluster_weight`` = λ / D here.
"""

from __future__ import annotations

import math

import torch

from brb.methods.objective import CentroidObjective, squared_distances
from brb.methods.options import DKMOptions


def annealed_alphas(n: int = 40, first: float = 0.1) -> list[float]:
    """DKM's annealing schedule: α_1 = ``first``, α_{k+1} = 2^{1/log(k+1)²} · α_k."""
    alphas = [first]
    for k in range(1, n):
        alphas.append(alphas[-1] * 2 ** (1 / math.log(k + 1) ** 2))
    return alphas


class DKM(CentroidObjective):
    """Deep k-Means: soft k-means loss with an annealed inverse temperature; centroids learned by the optimiser."""

    Options = DKMOptions
    ALPHAS = annealed_alphas()
    EPOCHS_PER_ALPHA = 5

    def __init__(self, config, centroids: torch.Tensor):
        super().__init__(config, centroids)
        self.start_epoch(0)

    def start_epoch(self, epoch: int) -> None:
        if self.options.dkm_schedule == "pretrained":
            self.alpha = self.options.dkm_alpha
        else:
            self.alpha = self.ALPHAS[min(epoch // self.EPOCHS_PER_ALPHA, len(self.ALPHAS) - 1)]

    def loss(self, z, z_aug, target):
        dist = squared_distances(z, self.centroids)
        weights = torch.softmax(-self.alpha * dist, dim=1)  # shift-invariant: as stable as subtracting the min
        loss = (dist * weights).sum(dim=1).mean()
        if z_aug is not None:
            loss = 0.5 * (loss + (squared_distances(z_aug, self.centroids) * weights).sum(dim=1).mean())
        return loss
