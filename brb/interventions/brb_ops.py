"""The three parts of BRB, each usable and testable on its own.

- :func:`soft_reset`: θ ← α·θ + (1 − α)·φ for the chosen layers, φ a fresh initialisation.
- :func:`recluster`: new centroids from the embedding of a random subsample (k-means by scikit-learn, or
  by :func:`~brb.cluster.kmeans_torch.kmeans_torch` on the training device).
- momentum reset lives on the objective (:meth:`CentroidObjective.reset_momentum`), since what counts
  as the centroids' optimiser state differs between algorithms.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Union

import numpy as np
import torch
import torch.nn as nn


@torch.no_grad()
def fresh_parameters(layer: nn.Module, init: str = "kaiming") -> list[torch.Tensor]:
    """A fresh initialisation φ of each parameter of ``layer``, drawn from torch's global generator.

    ``init="kaiming"`` (public BRB code): Linear/Conv weights ``kaiming_uniform_(a=0)``, i.e.
    U(±√(6/fan_in)), biases U(±1/√fan_in); BatchNorm weight 1, bias 0. ``init="default"``: what the
    layer's own ``reset_parameters()`` draws (for Linear/Conv weights U(±1/√fan_in)).
    """
    if init == "kaiming" and isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        weight = torch.empty_like(layer.weight)
        nn.init.kaiming_uniform_(weight, a=0)
        phis = [weight]
        if layer.bias is not None:
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            phis.append(torch.empty_like(layer.bias).uniform_(-bound, bound))
        return phis
    if init == "kaiming" and isinstance(layer, nn.modules.batchnorm._NormBase):
        return [torch.ones_like(p) if name == "weight" else torch.zeros_like(p) for name, p in layer.named_parameters()]
    if init not in ("kaiming", "default"):
        raise ValueError(f"unknown reset init {init!r}; use kaiming or default")
    fresh = copy.deepcopy(layer)
    if not hasattr(fresh, "reset_parameters"):
        raise TypeError(f"layer {type(layer).__name__} has no reset_parameters(); cannot soft-reset it")
    fresh.reset_parameters()
    return [p.detach() for p in fresh.parameters()]


def is_batchnorm(layer: nn.Module) -> bool:
    return isinstance(layer, nn.modules.batchnorm._NormBase)


@torch.no_grad()
def soft_reset(layers: Iterable[nn.Module], alpha: float, init: str = "kaiming", batchnorm: bool = True) -> int:
    """θ ← α·θ + (1 − α)·φ for every parameter of ``layers`` (φ from :func:`fresh_parameters` with ``init``);
    BatchNorm layers are skipped unless ``batchnorm``. Buffers (BatchNorm running statistics) are never
    touched. Returns the number of tensors changed."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"soft reset alpha must lie in [0, 1], got {alpha}")
    changed = 0
    for layer in layers:
        if is_batchnorm(layer) and not batchnorm:
            continue
        for theta, phi in zip(layer.parameters(), fresh_parameters(layer, init)):
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


def subsample_indices(n: int, size: int, seed: int, mode: str = "random") -> np.ndarray:
    """A subsample of ``size`` of ``n`` indices, sorted (all points when ``size >= n``): drawn without
    replacement (``mode="random"``) or the first ``size`` (``mode="first"``, as the public BRB code embeds
    the first batches of its unshuffled loader)."""
    if size >= n:
        return np.arange(n)
    if mode == "first":
        return np.arange(size)
    if mode != "random":
        raise ValueError(f"unknown subsample mode {mode!r}; use random or first")
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _as_numpy(z: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    """``z`` as a float64 numpy array (a torch tensor is detached and copied to the host)."""
    if isinstance(z, torch.Tensor):
        z = z.detach().cpu().numpy()
    return np.asarray(z, dtype=np.float64)


def _kmeans_on_device(z: Union[np.ndarray, torch.Tensor], k: int, seed: int, n_init: int) -> np.ndarray:
    """k-means with :func:`kmeans_torch` on the device ``z`` lives on (the CPU for a numpy array)."""
    from brb.cluster.kmeans_torch import kmeans_torch

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
    from brb.cluster.kmeans_torch import choose_kmeans_backend

    device = z.device if isinstance(z, torch.Tensor) else "cpu"
    chosen = choose_kmeans_backend(backend, len(z), device)  # validates ``backend`` for every method
    if method == "kmeans" and chosen == "torch":
        centers = _kmeans_on_device(z, k, seed, n_init)
    else:
        centers = fn(_as_numpy(z), k, seed, n_init)
    return np.asarray(centers, dtype=np.float32)
