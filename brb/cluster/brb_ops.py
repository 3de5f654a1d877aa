"""The three parts of BRB, each usable and testable on its own.

- :func:`soft_reset`: θ ← α·θ + (1 − α)·φ for the chosen layers, φ a fresh initialisation.
- :func:`recluster`: new centroids from the embedding of a random subsample (k-means by scikit-learn, or
  by :func:`~brb.cluster.kmeans_torch.kmeans_torch` on the training device).
- momentum reset lives on the objective (:meth:`CentroidObjective.reset_momentum`), since what counts
  as the centroids' optimiser state differs between algorithms.
"""

from __future__ import annotations

import copy
from typing import Iterable, Union

import numpy as np
import torch
import torch.nn as nn

from brb.cluster.kmeans_torch import choose_kmeans_backend, kmeans_torch


@torch.no_grad()
def soft_reset(layers: Iterable[nn.Module], alpha: float) -> int:
    """Interpolate every parameter of ``layers`` towards a fresh init; returns the number of tensors changed."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"soft reset alpha must lie in [0, 1], got {alpha}")
    changed = 0
    for layer in layers:
        fresh = copy.deepcopy(layer)
        if not hasattr(fresh, "reset_parameters"):
            raise TypeError(f"layer {type(layer).__name__} has no reset_parameters(); cannot soft-reset it")
        fresh.reset_parameters()
        for theta, phi in zip(layer.parameters(), fresh.parameters()):
            theta.mul_(alpha).add_(phi, alpha=1.0 - alpha)
            changed += 1
    return changed


def _kmeans(z: np.ndarray, k: int, seed: int, n_init: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(z).cluster_centers_


def _kmeans_plusplus(z: np.ndarray, k: int, seed: int, n_init: int) -> np.ndarray:
    from sklearn.cluster import kmeans_plusplus

    centers, _ = kmeans_plusplus(z, n_clusters=k, random_state=seed)
    return centers


def _kmedoids(z: np.ndarray, k: int, seed: int, n_init: int, max_iter: int = 50) -> np.ndarray:
    """Alternating k-medoids (Voronoi iteration) started from k-means++ seeds chosen among the points."""
    from sklearn.cluster import kmeans_plusplus

    _, idx = kmeans_plusplus(z, n_clusters=k, random_state=seed)
    medoids = np.array(idx)
    zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    for _ in range(max_iter):
        assign = torch.cdist(zt, zt[medoids]).argmin(dim=1).numpy()
        new = medoids.copy()
        for j in range(k):
            members = np.flatnonzero(assign == j)
            if len(members) == 0:
                continue
            within = torch.cdist(zt[members], zt[members]).sum(dim=1)
            new[j] = members[int(within.argmin())]
        if np.array_equal(new, medoids):
            break
        medoids = new
    return z[medoids]


def _em(z: np.ndarray, k: int, seed: int, n_init: int) -> np.ndarray:
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(n_components=k, covariance_type="diag", random_state=seed, n_init=1).fit(z).means_


def _random_points(z: np.ndarray, k: int, seed: int, n_init: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return z[rng.choice(len(z), size=k, replace=False)]


RECLUSTER_METHODS = {
    "kmeans": _kmeans,
    "kmeans++": _kmeans_plusplus,
    "kmedoids": _kmedoids,
    "em": _em,
    "random": _random_points,
}


def subsample_indices(n: int, size: int, seed: int) -> np.ndarray:
    """A random subsample without replacement (all points when ``size >= n``), sorted."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _as_numpy(z: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    """``z`` as a float64 numpy array (a torch tensor is detached and copied to the host)."""
    if isinstance(z, torch.Tensor):
        z = z.detach().cpu().numpy()
    return np.asarray(z, dtype=np.float64)


def _kmeans_on_device(z: Union[np.ndarray, torch.Tensor], k: int, seed: int, n_init: int) -> np.ndarray:
    """k-means with :func:`kmeans_torch` on the device ``z`` lives on (the CPU for a numpy array)."""
    zt = z if isinstance(z, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(z))
    return kmeans_torch(zt, k, seed, n_init).cpu().numpy()


def recluster(z: Union[np.ndarray, torch.Tensor], k: int, method: str = "kmeans", seed: int = 0, n_init: int = 10,
              backend: str = "sklearn") -> np.ndarray:
    """Centroids (k, d), float32 numpy, found on the embedding ``z`` (numpy array or torch tensor) by ``method``.

    ``backend`` (``sklearn`` | ``torch`` | ``auto``, see :func:`choose_kmeans_backend`) only matters for
    ``method="kmeans"``: with torch, k-means runs on the device a tensor ``z`` already lives on, without a
    copy to the host. The other methods always run on the host.
    """
    if k > len(z):
        raise ValueError(f"cannot find {k} clusters in {len(z)} points")
    try:
        fn = RECLUSTER_METHODS[method]
    except KeyError:
        raise ValueError(f"unknown recluster method {method!r}; known: {', '.join(RECLUSTER_METHODS)}") from None
    device = z.device if isinstance(z, torch.Tensor) else "cpu"
    chosen = choose_kmeans_backend(backend, len(z), device)  # validates ``backend`` for every method
    if method == "kmeans" and chosen == "torch":
        centers = _kmeans_on_device(z, k, seed, n_init)
    else:
        centers = fn(_as_numpy(z), k, seed, n_init)
    return np.asarray(centers, dtype=np.float32)
