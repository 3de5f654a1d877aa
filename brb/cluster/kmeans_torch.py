"""k-means (k-means++ seeding + Lloyd iterations) in torch, on the device the embedding already lives on.

Why: reclustering a 70,000-point embedding with scikit-learn means copying it to the host and running
restarts on a few CPU threads; on a GPU the same work is a handful of small kernels per iteration. The
algorithm follows scikit-learn's conventions so that both backends are interchangeable:

- greedy k-means++ seeding (``2 + floor(log k)`` candidates per step, the one lowering the potential most
  wins), one seeding per restart;
- Lloyd iterations until the total squared centroid shift is ``<= tol * mean per-feature variance``;
- an empty cluster takes the point farthest from its current centroid (the farthest points are handed out
  in order of decreasing distance, one per empty cluster);
- the restart with the lowest inertia (sum of squared distances to the nearest centroid) wins.

Distances use ``|x|^2 - 2 x.c + |c|^2`` on data centred on its mean (which keeps the cancellation error of
that expansion small), computed in row chunks so the (n, k) matrix never exceeds :data:`CHUNK_BYTES`.

Host synchronisation: the only per-iteration sync is the convergence test (one scalar ``.item()``, kept
because it ends a restart early, typically after tens of iterations instead of ``max_iter``), plus two per
call (the finiteness check of the input and the tolerance). The seeding, the centroid update
(``index_add_``/``bincount``), the empty-cluster repair and the choice of the best restart are sync-free
tensor code. Results are bit-identical for a given seed on the CPU; on CUDA, ``index_add_`` accumulates
with atomics, so the last bits may differ between runs.

Options (keyword-only; the defaults are the behaviour above, unchanged):

``metric="cosine"``: spherical k-means, as ``torch_clustering``'s cosine metric (ProPos) and faiss's
``spherical=True``. The points are L2-normalised once (not centred: centring would change their directions),
the centres are L2-normalised after every update, so the squared Euclidean distance used throughout equals
``2 - 2 cos`` and the nearest centre is the one of highest cosine similarity; k-means++ seeds with D² of that
chordal distance; the centroids returned have unit norm; :func:`assign_clusters` with ``metric="cosine"``
reports ``1 - cos``. The assignments are invariant to a positive rescaling of each point.

``empty="split"``: faiss's rule for empty clusters (``Clustering.cpp: split_clusters``, what DeepCluster's
k-means relies on) instead of the farthest point. After the centroids of an iteration are computed, every
empty cluster ``ci`` in index order

1. picks a donor cluster ``cj`` with probability proportional to ``max(n_j - 1, 0)`` (faiss: acceptance
   probability ``(n_j - 1)/(n - k)`` in a cyclic scan from cluster 0, i.e. approximately this distribution;
   clusters of one point and empty ones never donate), ``n_j`` being the current counts;
2. copies the donor's centroid and perturbs both copies symmetrically, per coordinate:
   ``c_ci[j] = c[j] (1 + eps)``, ``c_cj[j] = c[j] (1 - eps)`` on even coordinates ``j`` and the opposite signs
   on odd ones, ``eps = 1/1024`` — in the data's original coordinates (the Euclidean path works on centred
   data, so the mean is added back for the multiplication);
3. takes half of the donor's count (``n_ci = n_cj / 2``, ``n_cj -= n_ci``; counts are floats), so a later
   empty cluster may split either half.

The donor's points are not moved at this point: the next assignment step divides them between the two
perturbed copies (as in faiss). The donors are drawn with the k-means generator (``seed``); faiss uses a
fresh ``RandomGenerator(1234)`` per call.

``init="random"``: ``k`` distinct points drawn uniformly (faiss's initialisation, DeepCluster's); or a
``(k, d)`` tensor of starting centroids (every restart starts from it).
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
import torch.nn.functional as F

#: Upper bound on the bytes of one chunk of the (points, centroids) distance matrix.
CHUNK_BYTES = 32 * 1024**2
#: ``choose_kmeans_backend("auto", ...)`` picks torch on CUDA from this many points on.
AUTO_TORCH_MIN_POINTS = 20_000
KMEANS_BACKENDS = ("auto", "sklearn", "torch")
#: ``metric`` values of :func:`kmeans_torch` / :func:`assign_clusters`
KMEANS_METRICS = ("euclidean", "cosine")
#: ``empty`` rules of :func:`kmeans_torch`: the farthest point (scikit-learn's) or faiss's split
EMPTY_CLUSTER_RULES = ("farthest", "split")
#: named ``init`` values of :func:`kmeans_torch` (a tensor of starting centroids is accepted too)
KMEANS_INITS = ("k-means++", "random")
#: faiss's relative perturbation of a split centroid (``EPS`` in ``Clustering.cpp``)
SPLIT_EPS = 1.0 / 1024

Device = Union[str, torch.device, None]


def choose_kmeans_backend(setting: str, n_points: int, device: Device) -> str:
    """Resolve a ``run.kmeans`` setting to ``"sklearn"`` or ``"torch"``.

    ``auto`` gives torch only on a CUDA device with at least :data:`AUTO_TORCH_MIN_POINTS` points: there the
    GPU wins clearly, while on the CPU (or for small inputs) scikit-learn's compiled Lloyd loop is as fast
    or faster and is the reference implementation.
    """
    if setting not in KMEANS_BACKENDS:
        raise ValueError(f"unknown k-means backend {setting!r}; known: {', '.join(KMEANS_BACKENDS)}")
    if setting != "auto":
        return setting
    is_cuda = device is not None and torch.device(device).type == "cuda"
    return "torch" if is_cuda and n_points >= AUTO_TORCH_MIN_POINTS else "sklearn"


def _chunk_rows(n: int, k: int, chunk_rows: Optional[int], itemsize: int) -> int:
    """Rows per distance chunk: the caller's choice, else as many as fit in :data:`CHUNK_BYTES`."""
    if chunk_rows is not None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        return min(chunk_rows, n)
    return max(1, min(n, CHUNK_BYTES // (itemsize * max(k, 1))))


def _nearest(x: torch.Tensor, x_sq: torch.Tensor, centers: torch.Tensor,
             rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest centre and squared distance to it, for every row of ``x`` (chunked)."""
    n = x.shape[0]
    labels = torch.empty(n, dtype=torch.long, device=x.device)
    dist = torch.empty(n, dtype=x.dtype, device=x.device)
    c_sq = (centers * centers).sum(dim=1)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        # -2 x.c + |c|^2 ranks the centres; |x|^2 is added to the minimum only.
        partial = torch.addmm(c_sq.unsqueeze(0), x[start:stop], centers.T, alpha=-2.0)
        best, idx = partial.min(dim=1)
        labels[start:stop] = idx
        dist[start:stop] = (best + x_sq[start:stop]).clamp_min_(0.0)
    return labels, dist


def _sq_dist_to(x: torch.Tensor, x_sq: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Squared distances (n, m) from every row of ``x`` to a few ``points`` (m small: seeding candidates)."""
    p_sq = (points * points).sum(dim=1)
    return torch.addmm(p_sq.unsqueeze(0), x, points.T, alpha=-2.0).add_(x_sq.unsqueeze(1)).clamp_min_(0.0)


def _kmeans_plusplus(x: torch.Tensor, x_sq: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding: k centres drawn from the rows of ``x``.

    Each step samples ``2 + floor(log k)`` candidates with probability proportional to the squared distance
    to the nearest chosen centre and keeps the one giving the lowest potential. When every point already
    coincides with a centre (fewer distinct points than k) the candidates are drawn uniformly instead.
    """
    n, device = x.shape[0], x.device
    n_local = 2 + int(math.log(k))
    first = torch.randint(n, (1,), generator=gen, device=device)
    centers = torch.empty((k, x.shape[1]), dtype=x.dtype, device=device)
    centers[:1] = x[first]  # 1-d index tensors throughout: a 0-d one would sync with the host
    closest = _sq_dist_to(x, x_sq, centers[:1]).squeeze(1)
    for c in range(1, k):
        cumulative = torch.cumsum(closest, dim=0, dtype=torch.float64)
        potential = cumulative[-1]
        draws = torch.rand(n_local, generator=gen, device=device, dtype=torch.float64) * potential
        weighted = torch.searchsorted(cumulative, draws, right=True).clamp_(max=n - 1)
        uniform = torch.randint(n, (n_local,), generator=gen, device=device)
        candidates = torch.where(potential > 0, weighted, uniform)
        cand_dist = torch.minimum(_sq_dist_to(x, x_sq, x[candidates]), closest.unsqueeze(1))
        best = cand_dist.sum(dim=0).argmin().unsqueeze(0)
        centers[c : c + 1] = x[candidates[best]]
        closest = cand_dist.index_select(1, best).squeeze(1)
    return centers


def _update_centers(x: torch.Tensor, x_t: torch.Tensor, labels: torch.Tensor, dist: torch.Tensor,
                    centers: torch.Tensor) -> torch.Tensor:
    """New centroids: member means, with each empty cluster re-seeded on a farthest point.

    ``x_t`` is ``x.T`` made contiguous: summing its columns per label (``index_add_`` along dim 1) is several
    times faster on the CPU than summing the rows of ``x``. Vectorised and sync-free: the r-th empty cluster
    takes the r-th farthest point (distance to its own centroid), which is removed from the cluster it
    belonged to. A cluster left with no member keeps its previous centroid.
    """
    k = centers.shape[0]
    sums = x_t.new_zeros((x_t.shape[0], k)).index_add_(1, labels, x_t).T
    counts = torch.bincount(labels, minlength=k).to(x.dtype)
    empty = counts == 0
    farthest = torch.topk(dist, k).indices
    donors = farthest[(torch.cumsum(empty, dim=0) - 1).clamp_(min=0)]
    moved = empty.to(x.dtype)
    sums = sums.index_add(0, labels[donors], x[donors] * -moved.unsqueeze(1))
    counts.index_add_(0, labels[donors], -moved)
    sums = torch.where(empty.unsqueeze(1), x[donors], sums)
    counts = torch.where(empty, torch.ones_like(counts), counts)
    means = sums / counts.clamp(min=1.0).unsqueeze(1)
    return torch.where((counts > 0).unsqueeze(1), means, centers)


def split_empty_clusters(centers: torch.Tensor, counts: torch.Tensor, gen: torch.Generator,
                         origin: Optional[torch.Tensor] = None, eps: float = SPLIT_EPS) -> tuple[torch.Tensor, int]:
    """faiss's ``split_clusters``: re-seed every empty cluster on a perturbed copy of a donor (module notes).

    ``centers`` (k, d): the centroids just computed (an empty cluster's row is overwritten); ``counts`` (k,):
    the cluster sizes of the assignment step; ``gen``: a generator on ``centers``' device; ``origin`` (d,):
    where the data's origin lies in the coordinates of ``centers`` (the perturbation is multiplicative in the
    original coordinates; None = zero). Returns (new centroids, number of splits). One host sync (which
    clusters are empty); the donors are drawn on the device.
    """
    empty = (counts == 0).nonzero().flatten().tolist()
    if not empty:
        return centers, 0
    k, d = centers.shape
    if float(counts.sum().item()) < k:  # then no donor might be left for a later empty cluster
        raise ValueError(f"cannot split empty clusters: {int(counts.sum().item())} points for {k} clusters")
    centers = centers.clone()
    counts = counts.to(device=centers.device, dtype=torch.float64).clone()
    sign = torch.ones(d, dtype=centers.dtype, device=centers.device)
    sign[1::2] = -1.0  # even coordinates: the empty cluster's copy grows, odd ones: it shrinks
    up, down = 1.0 + eps * sign, 1.0 - eps * sign
    shift = origin.to(centers) if origin is not None else centers.new_zeros(d)
    for ci in empty:
        donor = torch.multinomial((counts - 1.0).clamp_min(0.0), 1, generator=gen)  # 1-element tensor: no sync
        c = centers[donor] + shift
        centers[ci] = (c * up - shift).squeeze(0)
        centers[donor] = c * down - shift
        half = counts[donor] / 2
        counts[ci] = half.squeeze(0)
        counts[donor] -= half
    return centers, len(empty)


def _update_centers_split(x_t: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, gen: torch.Generator,
                          origin: Optional[torch.Tensor]) -> torch.Tensor:
    """New centroids: member means; empty clusters re-seeded by :func:`split_empty_clusters`."""
    k = centers.shape[0]
    sums = x_t.new_zeros((x_t.shape[0], k)).index_add_(1, labels, x_t).T
    counts = torch.bincount(labels, minlength=k)
    means = sums / counts.clamp(min=1).to(x_t.dtype).unsqueeze(1)
    means = torch.where((counts > 0).unsqueeze(1), means, centers)
    return split_empty_clusters(means, counts, gen, origin)[0]


def _lloyd(x: torch.Tensor, x_t: torch.Tensor, x_sq: torch.Tensor, centers: torch.Tensor, max_iter: int,
           tol_abs: float, rows: int, metric: str = "euclidean", empty: str = "farthest",
           gen: Optional[torch.Generator] = None, origin: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd iterations from ``centers``; returns the final centroids and their inertia (0-d tensor).

    ``metric="cosine"``: ``x`` holds unit rows and the centres are re-normalised after every update.
    ``empty="split"``: faiss's split rule (needs ``gen``; ``origin``: the mean removed from ``x``)."""
    for _ in range(max_iter):
        labels, dist = _nearest(x, x_sq, centers, rows)
        if empty == "split":
            new = _update_centers_split(x_t, labels, centers, gen, origin)
        else:
            new = _update_centers(x, x_t, labels, dist, centers)
        if metric == "cosine":
            new = F.normalize(new, dim=1)
        shift = ((new - centers) ** 2).sum()
        centers = new
        if shift.item() <= tol_abs:  # the one host sync per iteration
            break
    _, dist = _nearest(x, x_sq, centers, rows)
    return centers, dist.sum(dtype=torch.float64)


def _validate(z: torch.Tensor, k: int, n_init: int, max_iter: int, tol: float) -> None:
    if z.dim() != 2:
        raise ValueError(f"k-means expects a 2-d (points, features) tensor, got shape {tuple(z.shape)}")
    if k < 1 or k > z.shape[0]:
        raise ValueError(f"cannot find {k} clusters in {z.shape[0]} points")
    if n_init < 1 or max_iter < 1 or tol < 0:
        raise ValueError(f"need n_init >= 1, max_iter >= 1, tol >= 0 (got {n_init}, {max_iter}, {tol})")


def _check_metric(metric: str) -> None:
    if metric not in KMEANS_METRICS:
        raise ValueError(f"unknown k-means metric {metric!r}; known: {', '.join(KMEANS_METRICS)}")


def _validate_options(metric: str, empty: str, init, k: int, d: int) -> None:
    _check_metric(metric)
    if empty not in EMPTY_CLUSTER_RULES:
        raise ValueError(f"unknown empty-cluster rule {empty!r}; known: {', '.join(EMPTY_CLUSTER_RULES)}")
    if isinstance(init, torch.Tensor):
        if tuple(init.shape) != (k, d):
            raise ValueError(f"init centroids must have shape ({k}, {d}), got {tuple(init.shape)}")
        if not bool(torch.isfinite(init).all()):
            raise ValueError("init centroids contain NaN or infinite values")
    elif init not in KMEANS_INITS:
        raise ValueError(f"unknown k-means init {init!r}; known: {', '.join(KMEANS_INITS)} or a (k, d) tensor")


def _start(x: torch.Tensor, x_sq: torch.Tensor, k: int, gen: torch.Generator, init, metric: str,
           origin: torch.Tensor) -> torch.Tensor:
    """Starting centroids of one restart, in the working coordinates of ``x``."""
    if isinstance(init, torch.Tensor):
        c = init.detach().to(device=x.device, dtype=x.dtype)
        return F.normalize(c, dim=1) if metric == "cosine" else c - origin
    if init == "random":  # k distinct points, uniformly (faiss)
        return x[torch.randperm(x.shape[0], generator=gen, device=x.device)[:k]].clone()
    return _kmeans_plusplus(x, x_sq, k, gen)


@torch.no_grad()
def kmeans_torch(z: torch.Tensor, k: int, seed: int, n_init: int = 10, max_iter: int = 300, tol: float = 1e-4,
                 *, chunk_rows: Optional[int] = None, metric: str = "euclidean", empty: str = "farthest",
                 init: Union[str, torch.Tensor] = "k-means++") -> torch.Tensor:
    """Centroids (k, d), float32 on ``z``'s device, of the best of ``n_init`` k-means restarts.

    ``seed`` seeds a ``torch.Generator`` on ``z``'s device, so CPU results are reproducible bit for bit.
    ``chunk_rows`` overrides the rows per distance chunk (default: sized to :data:`CHUNK_BYTES`).
    ``metric`` (``euclidean`` | ``cosine``: spherical k-means, unit-norm centroids), ``empty`` (``farthest`` |
    ``split``: faiss's rule) and ``init`` (``k-means++`` | ``random`` | a (k, d) tensor): module notes.
    """
    _validate(z, k, n_init, max_iter, tol)
    _validate_options(metric, empty, init, k, z.shape[1])
    x = z.detach().to(torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("k-means input contains NaN or infinite values")
    if metric == "cosine":
        mean = x.new_zeros(x.shape[1])
        x = F.normalize(x, dim=1)
    else:
        mean = x.mean(dim=0)
        x = x - mean
    x_t = x.T.contiguous()
    x_sq = (x * x).sum(dim=1)
    tol_abs = tol * float(x.var(dim=0, unbiased=False).mean())
    rows = _chunk_rows(x.shape[0], k, chunk_rows, x.element_size())
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    best_centers, best_inertia = None, None
    for _ in range(n_init):
        start = _start(x, x_sq, k, gen, init, metric, mean)
        centers, inertia = _lloyd(x, x_t, x_sq, start, max_iter, tol_abs, rows, metric, empty, gen, mean)
        if best_centers is None:
            best_centers, best_inertia = centers, inertia
        else:  # keep the earlier restart on ties; no host sync
            better = inertia < best_inertia
            best_centers = torch.where(better, centers, best_centers)
            best_inertia = torch.where(better, inertia, best_inertia)
    return (best_centers + mean).contiguous()


@torch.no_grad()
def assign_clusters(z: torch.Tensor, centroids: torch.Tensor,
                    chunk_rows: Optional[int] = None, *, metric: str = "euclidean") -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid (labels) and distance to it for every point, in ``z``'s dtype and device.

    Euclidean: the squared distance; the inertia of ``centroids`` on ``z`` is
    ``assign_clusters(z, centroids)[1].sum()``, used by the tests and the benchmark to score both backends the
    same way. Cosine: the centroid of highest cosine similarity and the cosine distance ``1 - cos``.
    """
    _check_metric(metric)
    c = centroids.to(device=z.device, dtype=z.dtype)
    if metric == "cosine":
        x, c = F.normalize(z, dim=1), F.normalize(c, dim=1)
    else:
        mean = z.mean(dim=0)
        x, c = z - mean, c - mean
    rows = _chunk_rows(x.shape[0], c.shape[0], chunk_rows, x.element_size())
    labels, dist = _nearest(x, (x * x).sum(dim=1), c, rows)
    return (labels, dist / 2) if metric == "cosine" else (labels, dist)
