"""The three parts of BRB, each usable and testable on its own.

- :func:`soft_reset`: θ ← α·θ + (1 − α)·φ for the chosen layers, φ a fresh initialisation.
- :func:`recluster`: new centroids from the embedding of a random subsample.
- momentum reset lives on the objective (:meth:`CentroidObjective.reset_momentum`), since what counts
  as the centroids' optimiser state differs between algorithms.
"""

from __future__ import annotations

import copy
from typing import Iterable

import numpy as np
import torch
import torch.nn as nn


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


def recluster(z: np.ndarray, k: int, method: str = "kmeans", seed: int = 0, n_init: int = 10) -> np.ndarray:
    """Centroids (k, d) found on the embedding ``z`` by ``method``."""
    if k > len(z):
        raise ValueError(f"cannot find {k} clusters in {len(z)} points")
    try:
        fn = RECLUSTER_METHODS[method]
    except KeyError:
        raise ValueError(f"unknown recluster method {method!r}; known: {', '.join(RECLUSTER_METHODS)}") from None
    return np.asarray(fn(np.asarray(z, dtype=np.float64), k, seed, n_init), dtype=np.float32)
