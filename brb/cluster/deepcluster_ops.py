"""The non-network parts of DeepCluster (Caron et al., ECCV 2018; read from facebookresearch/deepcluster: ``main.py``,
``clustering.py``, ``util.py``), in torch, on any device, deterministic given a seed or a ``torch.Generator``.

One epoch of DeepCluster and where its pieces are:

1. features of the whole dataset (the network's ``features``, pre-ReLU fc7, eval mode; :mod:`brb.models.deepcluster`);
2. :func:`pca_whiten`: PCA to 256 dimensions with whitening, then L2-normalised rows (their ``preprocess_features``);
3. :func:`kmeans`: k-means with faiss's settings (random initial points, 20 iterations, faiss's empty-cluster split)
   on our torch k-means, or on faiss itself (``backend="faiss"``, an optional dependency);
4. :func:`arrange_clustering` / :func:`images_lists_from_labels`: per-sample pseudo-labels ⇄ per-cluster index lists;
5. :class:`UniformClusterSampler`: indices uniform over the non-empty clusters (their ``UnifLabelSampler``);
6. :func:`make_top_layer` / :func:`reinit_top_layer_`: a new top layer every epoch, weights N(0, 0.01), bias 0;
7. :func:`nmi_consecutive`: NMI between the assignments of consecutive epochs (their stability log).

Departures from the original code, each on purpose:

* PCA whitening (:func:`fit_pca_whitening`): faiss's ``PCAMatrix`` takes the eigenvectors of the scatter matrix
  ``Σ (x - μ)(x - μ)^T`` (not divided by n) and scales component i by ``(λ_i + epsilon)^-0.5`` (``eigen_power = -0.5``,
  ``epsilon = 0``), so its whitened components have variance 1/n. We divide by n: the whitened components have unit
  variance on the fitted data; after the L2 normalisation the rows are the same (for ``eps = 0``). ``eps`` is added to
  the per-sample variance. Eigenvectors are signed so that their largest-magnitude coordinate is positive
  (deterministic across devices); the covariance is accumulated in float64, in row chunks.
* Uniform sampler: the original draws ⌊N/m⌋ + 1 indices from each of the m non-empty clusters, shuffles and truncates
  to N, so a cluster's final count varies randomly around N/m. We give each cluster an exact quota, ⌊N/m⌋ or
  ⌊N/m⌋ + 1 (the N mod m larger quotas go to clusters drawn at random), so every count is within 1 of N/m and the
  length is exactly N. A cluster smaller than its quota is drawn with replacement, otherwise without (the original:
  with replacement when its size is ``<=`` its draw of ⌊N/m⌋ + 1).
* :func:`nmi_consecutive` uses scikit-learn's NMI with ``average_method="arithmetic"`` (brb's convention, scikit-learn's
  default since 0.22); the 2018 code ran an older scikit-learn whose default was the geometric mean.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Optional, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from brb.cluster.kmeans_torch import assign_clusters, kmeans_torch

#: how to get the optional faiss dependency (pyproject.toml declares no extra for it)
FAISS_INSTALL_HINT = "pip install faiss-cpu"
#: ``backend`` values of :func:`kmeans`
DEEPCLUSTER_KMEANS_BACKENDS = ("torch", "faiss", "auto")
#: DeepCluster's settings
PCA_DIM = 256
KMEANS_NITER = 20
TOP_LAYER_STD = 0.01
#: faiss's ``max_points_per_centroid`` in DeepCluster (no subsampling of the training points)
FAISS_MAX_POINTS_PER_CENTROID = 10_000_000
#: rows per chunk when accumulating the covariance
PCA_CHUNK_ROWS = 65_536

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[int]]


# --- PCA whitening + L2 normalisation ---------------------------------------------------------------------------


@dataclass
class PCAWhitening:
    """A fitted PCA whitening: ``whiten(x) = (x - mean) @ projection``.

    ``mean`` (d,) and ``projection`` (d, dim) in float32 on the features' device; column i of ``projection`` is the
    i-th principal direction divided by ``sqrt(variances[i] + eps)``; ``variances`` (dim,) float64, decreasing.
    """

    mean: torch.Tensor
    projection: torch.Tensor
    variances: torch.Tensor
    eps: float

    @property
    def dim(self) -> int:
        return self.projection.shape[1]

    def whiten(self, features: torch.Tensor) -> torch.Tensor:
        """The whitened components (n, dim), before the L2 normalisation: unit variance on the fitted data."""
        x = torch.as_tensor(features).to(device=self.mean.device, dtype=torch.float32)
        return (x - self.mean) @ self.projection

    def apply(self, features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """:meth:`whiten`, then (``normalize``) every row divided by its L2 norm (DeepCluster's ``preprocess_features``)."""
        y = self.whiten(features)
        return F.normalize(y, dim=1) if normalize else y

    __call__ = apply


@torch.no_grad()
def fit_pca_whitening(features: torch.Tensor, dim: int = PCA_DIM, eps: float = 1e-8,
                      chunk_rows: int = PCA_CHUNK_ROWS) -> PCAWhitening:
    """Fit PCA with whitening to the rows of ``features`` (n, d): mean, top-``dim`` eigenvectors of the covariance
    (divided by n) and their variances (faiss ``PCAMatrix(d, dim, eigen_power=-0.5)``; module notes).

    With ``n <= dim`` the trailing components have zero variance up to rounding, and whitening scales that rounding
    noise by ``1/sqrt(eps)`` (faiss, ``epsilon = 0``, divides by zero); DeepCluster always has n ≫ 256."""
    x = torch.as_tensor(features).detach()
    if x.dim() != 2:
        raise ValueError(f"PCA expects a 2-d (samples, features) tensor, got shape {tuple(x.shape)}")
    n, d = x.shape
    if n < 2:
        raise ValueError(f"PCA needs at least 2 samples, got {n}")
    if not 1 <= dim <= d:
        raise ValueError(f"PCA dimension must be between 1 and the feature dimension {d}, got {dim}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("PCA input contains NaN or infinite values")
    mean = x.sum(dim=0, dtype=torch.float64) / n
    cov = torch.zeros((d, d), dtype=torch.float64, device=x.device)
    for start in range(0, n, chunk_rows):
        c = x[start:start + chunk_rows].to(torch.float64) - mean
        cov.addmm_(c.T, c)
    cov /= n
    values, vectors = torch.linalg.eigh(cov)  # ascending
    values = values.flip(0)[:dim].clamp_min(0.0)
    vectors = vectors.flip(1)[:, :dim]
    pivot = vectors.abs().argmax(dim=0)
    vectors = vectors * torch.sign(vectors.gather(0, pivot.unsqueeze(0)))
    projection = vectors / torch.sqrt(values + eps)
    return PCAWhitening(mean.to(torch.float32), projection.to(torch.float32), values, float(eps))


def pca_whiten(features: torch.Tensor, dim: int = PCA_DIM, eps: float = 1e-8, normalize: bool = True) -> torch.Tensor:
    """DeepCluster's ``preprocess_features``: PCA to ``dim`` with whitening fitted on ``features`` and applied to
    them, then L2-normalised rows (``normalize=False``: the whitened components, unit variance). float32."""
    return fit_pca_whitening(features, dim, eps).apply(features, normalize)


# --- pseudo-labels ------------------------------------------------------------------------------------------------


def _index_tensor(values) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().to(device="cpu", dtype=torch.long).reshape(-1)
    return torch.as_tensor(np.asarray(values, dtype=np.int64).reshape(-1))


def images_lists_from_labels(labels: ArrayLike, k: Optional[int] = None) -> list[list[int]]:
    """Per-cluster lists of sample indices (DeepCluster's ``images_lists``) from per-sample labels in 0 … k - 1
    (``k``: None = max label + 1); clusters without a sample get an empty list."""
    y = _index_tensor(labels)
    if len(y) and int(y.min()) < 0:
        raise ValueError(f"labels must be >= 0, got {int(y.min())}")
    k = (int(y.max()) + 1 if len(y) else 0) if k is None else int(k)
    if len(y) and int(y.max()) >= k:
        raise ValueError(f"label {int(y.max())} out of range for k = {k}")
    order = torch.argsort(y, stable=True)
    sizes = torch.bincount(y, minlength=k).tolist()
    return [chunk.tolist() for chunk in torch.split(order, sizes)]


def arrange_clustering(images_lists: Sequence[Sequence[int]]) -> torch.Tensor:
    """Per-sample pseudo-labels (n,) from per-cluster index lists: sample i gets the index of the list holding it
    (DeepCluster's ``arrange_clustering``). The lists must hold every index 0 … n - 1 exactly once."""
    if len(images_lists) == 0:
        raise ValueError("no clusters given")
    parts = [_index_tensor(c) for c in images_lists]
    idx = torch.cat(parts)
    n = len(idx)
    if n == 0:
        raise ValueError("the clusters hold no sample")
    if int(idx.min()) < 0 or int(idx.max()) >= n or len(torch.unique(idx)) != n:
        raise ValueError(f"the cluster lists must hold each of the sample indices 0 ... {n - 1} exactly once")
    labels = torch.empty(n, dtype=torch.long)
    labels[idx] = torch.repeat_interleave(torch.arange(len(parts)), torch.tensor([len(p) for p in parts]))
    return labels


def _as_labels(assignment) -> np.ndarray:
    """Per-sample labels from labels (tensor, array, list of ints) or per-cluster index lists."""
    if isinstance(assignment, (list, tuple)) and assignment and not isinstance(assignment[0], (int, np.integer)):
        return arrange_clustering(assignment).numpy()
    return _index_tensor(assignment).numpy()


def nmi_consecutive(previous, current, average_method: str = "arithmetic") -> float:
    """NMI between two assignments of the same samples (DeepCluster logs it between consecutive epochs), each given
    as per-sample labels or per-cluster index lists; scikit-learn's NMI (``average_method``: module notes)."""
    from sklearn.metrics import normalized_mutual_info_score

    a, b = _as_labels(previous), _as_labels(current)
    if a.shape != b.shape:
        raise ValueError(f"the assignments cover different numbers of samples: {len(a)} and {len(b)}")
    return float(normalized_mutual_info_score(a, b, average_method=average_method))


# --- uniform sampling over clusters -------------------------------------------------------------------------------


def _groups_from_labels(labels: ArrayLike) -> list[torch.Tensor]:
    """Sample indices of every non-empty cluster, clusters in increasing label order."""
    y = _index_tensor(labels)
    order = torch.argsort(y, stable=True)
    _, sizes = torch.unique_consecutive(y[order], return_counts=True)
    return list(torch.split(order, sizes.tolist()))


def _uniform_indices(groups: list[torch.Tensor], n_samples: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    groups = [g for g in groups if len(g) > 0]
    if not groups:
        raise ValueError("every cluster is empty: nothing to sample")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    m = len(groups)
    base, extra = divmod(int(n_samples), m)
    quota = torch.full((m,), base, dtype=torch.long)
    quota[torch.randperm(m, generator=generator)[:extra]] += 1
    picks = []
    for members, q in zip(groups, quota.tolist()):
        size = len(members)
        if size >= q:  # enough members: distinct ones
            picks.append(members[torch.randperm(size, generator=generator)[:q]])
        else:  # smaller than its share: with replacement
            picks.append(members[torch.randint(size, (q,), generator=generator)])
    indices = torch.cat(picks)
    return indices[torch.randperm(len(indices), generator=generator)]


def uniform_cluster_indices(labels: ArrayLike, n_samples: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``n_samples`` sample indices (LongTensor, shuffled), uniform over the non-empty clusters of the per-sample
    ``labels``: each cluster contributes ⌊n/m⌋ or ⌊n/m⌋ + 1 of its samples (m non-empty clusters), with replacement
    only when it has fewer samples than that. ``generator``: a CPU generator (None: torch's global one)."""
    return _uniform_indices(_groups_from_labels(labels), n_samples, generator)


class UniformClusterSampler(torch.utils.data.Sampler):
    """DeepCluster's ``UnifLabelSampler``: a fixed draw of :func:`uniform_cluster_indices`, made at construction
    (build a new sampler every epoch, as DeepCluster does); iterating yields the dataset indices in order.

    ``labels``: per-sample pseudo-labels (see :meth:`from_images_lists` for per-cluster index lists);
    ``n_samples``: the epoch length (DeepCluster: ``reassign × |dataset|``); ``generator``: a CPU generator.
    """

    def __init__(self, labels: ArrayLike, n_samples: int, generator: Optional[torch.Generator] = None):
        self._init(_groups_from_labels(labels), n_samples, generator)

    def _init(self, groups: list[torch.Tensor], n_samples: int, generator: Optional[torch.Generator]) -> None:
        self.n_samples = int(n_samples)
        self.n_nonempty = sum(1 for g in groups if len(g) > 0)
        self.indexes = _uniform_indices(groups, self.n_samples, generator)

    @classmethod
    def from_images_lists(cls, images_lists: Sequence[Sequence[int]], n_samples: int,
                          generator: Optional[torch.Generator] = None) -> UniformClusterSampler:
        """The sampler from per-cluster index lists (DeepCluster's ``images_lists``; empty lists allowed)."""
        self = cls.__new__(cls)
        self._init([_index_tensor(c) for c in images_lists], n_samples, generator)
        return self

    def __iter__(self) -> Iterator[int]:
        return iter(self.indexes.tolist())

    def __len__(self) -> int:
        return self.n_samples


# --- the per-epoch top layer --------------------------------------------------------------------------------------


@torch.no_grad()
def reinit_top_layer_(linear: nn.Linear, std: float = TOP_LAYER_STD, generator: Optional[torch.Generator] = None) -> nn.Linear:
    """Re-draw ``linear``'s weights from N(0, ``std``²) (DeepCluster: std 0.01) and zero its bias, in place; every
    call draws anew (``generator``: on the layer's device; None: torch's global one). Returns ``linear``."""
    linear.weight.normal_(0.0, std, generator=generator)
    if linear.bias is not None:
        linear.bias.zero_()
    return linear


def make_top_layer(in_features: int, k: int, *, device=None, dtype=None,
                   generator: Optional[torch.Generator] = None) -> nn.Linear:
    """A new top layer ``Linear(in_features, k)`` initialised by :func:`reinit_top_layer_`."""
    return reinit_top_layer_(nn.Linear(in_features, k, device=device, dtype=dtype), generator=generator)


# --- k-means --------------------------------------------------------------------------------------------------------


class KMeansResult(NamedTuple):
    """``labels`` (n,) long and ``centroids`` (k, d) float32 on the features' device; ``inertia``: the sum of squared
    distances to the nearest centroid (cosine metric: of ``1 - cos``)."""

    labels: torch.Tensor
    centroids: torch.Tensor
    inertia: float


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def import_faiss():
    """The faiss module, or an ImportError saying how to install it."""
    try:
        import faiss
    except ImportError as err:
        raise ImportError(f"the faiss k-means backend needs the optional dependency faiss, which is not installed: "
                          f"{FAISS_INSTALL_HINT} (or use backend='torch')") from err
    return faiss


def kmeans(features: torch.Tensor, k: int, seed: int, *, backend: str = "torch", niter: int = KMEANS_NITER,
           n_init: int = 1, metric: str = "euclidean", init: Union[str, torch.Tensor] = "random", empty: str = "split",
           chunk_rows: Optional[int] = None) -> KMeansResult:
    """DeepCluster's ``run_kmeans``: k-means of ``features`` (n, d) into ``k`` clusters, then every sample assigned to
    its nearest centroid.

    ``backend``: ``torch`` (:func:`~brb.cluster.kmeans_torch.kmeans_torch` on the features' device, with faiss's
    rules by default: ``init="random"``, ``empty="split"``, ``niter`` iterations at most, stopping earlier only at a
    fixed point), ``faiss`` (``faiss.Clustering`` on the CPU, flat index, ``max_points_per_centroid`` = 10⁷ as
    DeepCluster; needs the optional faiss: :data:`FAISS_INSTALL_HINT`; faiss always starts from random points and
    splits empty clusters, so ``init``/``empty`` must keep those defaults; faiss next to PyTorch's OpenMP has been
    reported to hang) or ``auto`` (faiss when importable, else torch). ``metric="cosine"``: spherical k-means
    (faiss: ``spherical=True`` with an inner-product index on L2-normalised rows). ``seed``: DeepCluster draws a
    new one every epoch (``np.random.randint(1234)``). ``n_init``: restarts (faiss ``nredo``), the best kept.
    """
    if backend not in DEEPCLUSTER_KMEANS_BACKENDS:
        raise ValueError(f"unknown k-means backend {backend!r}; known: {', '.join(DEEPCLUSTER_KMEANS_BACKENDS)}")
    if backend == "auto":
        backend = "faiss" if faiss_available() else "torch"
    x = torch.as_tensor(features).detach()
    if backend == "faiss":
        return _kmeans_faiss(x, k, seed, niter, n_init, metric, init, empty)
    x = x.to(torch.float32)
    centroids = kmeans_torch(x, k, seed, n_init=n_init, max_iter=niter, tol=0.0, chunk_rows=chunk_rows, metric=metric,
                             empty=empty, init=init)
    labels, dist = assign_clusters(x, centroids, chunk_rows, metric=metric)
    return KMeansResult(labels, centroids, float(dist.sum(dtype=torch.float64)))


def _kmeans_faiss(x: torch.Tensor, k: int, seed: int, niter: int, n_init: int, metric: str, init, empty: str) -> KMeansResult:
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"unknown k-means metric {metric!r}; known: euclidean, cosine")
    if not (isinstance(init, str) and init == "random") or empty != "split":
        raise ValueError("faiss's k-means starts from random points and splits empty clusters: use init='random', "
                         "empty='split' with backend='faiss'")
    if x.dim() != 2 or not 1 <= k <= x.shape[0]:
        raise ValueError(f"cannot find {k} clusters in features of shape {tuple(x.shape)}")
    faiss = import_faiss()
    device = x.device
    data = x.to(device="cpu", dtype=torch.float32)
    if metric == "cosine":
        data = F.normalize(data, dim=1)
    data = np.ascontiguousarray(data.numpy())
    d = data.shape[1]
    clus = faiss.Clustering(d, k)
    clus.niter = int(niter)
    clus.nredo = int(n_init)
    clus.seed = int(seed)
    clus.max_points_per_centroid = FAISS_MAX_POINTS_PER_CENTROID
    clus.spherical = metric == "cosine"
    index = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
    clus.train(data, index)
    centroids = faiss.vector_to_array(clus.centroids).reshape(k, d)
    dist, labels = index.search(data, 1)  # the index holds the final centroids
    inertia = float((1.0 - dist[:, 0].astype(np.float64)).sum()) if metric == "cosine" else float(dist.astype(np.float64).sum())
    return KMeansResult(torch.from_numpy(labels[:, 0].astype(np.int64)).to(device),
                        torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32)).to(device), inertia)


__all__ = [
    "DEEPCLUSTER_KMEANS_BACKENDS", "FAISS_INSTALL_HINT", "KMeansResult", "PCAWhitening", "UniformClusterSampler",
    "arrange_clustering", "faiss_available", "fit_pca_whitening", "images_lists_from_labels", "import_faiss", "kmeans",
    "make_top_layer", "nmi_consecutive", "pca_whiten", "reinit_top_layer_", "uniform_cluster_indices",
]
