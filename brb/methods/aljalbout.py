"""The two clustering methods of Aljalbout, Golkov, Siddiqui, Cremers (2018), "Clustering with deep learning:
taxonomy and new methods", on a (convolutional) autoencoder, as their code (Theano/Lasagne, commit 95eae15)
runs them. Registry names after the rows of their table:

- ``ae_kl`` (AE + KL): DEC's KL(P ‖ Q) with Student-t soft assignments (α = 1) + 1 · reconstruction (mean squared
  error), the target P computed over the whole dataset at the start of every epoch (``cluster.target:
  dataset``), the KL **summed** over the batch (``cluster.kl_reduction: sum``; their reconstruction is a mean, so
  the balance between the two terms follows the batch size: 100 on MNIST, 10 on COIL-20). Centroids learned.
- ``ae_kmeans`` (AE + k-means loss): 0.1 · mean_i min_j ‖z_i − μ_j‖ (Euclidean distance, not squared; hard
  minimum) + 1 · reconstruction. Their code keeps the centroids at the initial k-means solution (excluded from
  the update; its k-means re-run every 10 epochs is computed and never written back):
  ``cluster.kmeans_loss_centroids: fixed`` with ``cluster.recluster_every: 0`` (the default, what produced their
  numbers). What the paper describes, centroids updated by re-clustering: ``cluster.recluster_every: 10``;
  centroids learned by the optimiser instead: ``kmeans_loss_centroids: learned``.

Both: Nesterov momentum SGD (lr 0.01, momentum 0.9, no decay; ``cluster.optimizer: sgd``), k-means (n_init 20:
``cluster.kmeans_n_init``) on the final embedding as the reported assignment (``cluster.final_kmeans``), the
centroid assignment recorded beside it (``centroid_acc``, ...), NMI with geometric normalisation
(``nmi_geometric``) as theirs. Not reproduced: their target P is computed with training-mode BatchNorm (a
non-deterministic pass); ours uses the evaluation mode, as DEC's.
"""

from __future__ import annotations

import torch

from brb.methods.dec import DEC
from brb.methods.objective import CentroidObjective
from brb.methods.options import AEKLOptions, AEKMeansOptions


class AEKL(DEC):
    """AE + KL: DEC's loss with the options their code uses (:class:`AEKLOptions`)."""

    Options = AEKLOptions


def nearest_distance(z: torch.Tensor, centroids: torch.Tensor, assign: torch.Tensor) -> torch.Tensor:
    """‖z_i − μ_assign(i)‖ (Euclidean), per row; zero rows have zero gradient."""
    sq = (z - centroids[assign]).pow(2).sum(dim=1)
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


class AEKMeans(CentroidObjective):
    """AE + k-means loss: mean_i min_j ‖z_i − μ_j‖; centroids fixed (their code) or learned."""

    Options = AEKMeansOptions

    @property
    def learned_centroids(self) -> bool:
        return self.options.kmeans_loss_centroids == "learned"

    def loss(self, z, z_aug, target):
        assign = torch.cdist(z.detach(), self.centroids.detach()).argmin(dim=1)
        loss = nearest_distance(z, self.centroids, assign).mean()
        if z_aug is not None:  # the augmented view is pulled to its clean view's centroid
            loss = 0.5 * (loss + nearest_distance(z_aug, self.centroids, assign).mean())
        return loss
