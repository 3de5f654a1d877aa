"""Self-supervised and prototype losses of ProPos (Huang et al., TPAMI 2022) and the baselines of its repository
(BYOL, SimSiam, MoCo v2, PCL, Contrastive Clustering), as read from Hzzone/ProPos (``models/propos/byol_wrapper.py``,
``models/simsiam``, ``models/moco``, ``models/pcl``, ``models/contrastive_clustering/losses.py``); formulas in
``shared/methods/propos.md``. Single-process: the caller gathers tensors over devices if it wants ProPos's
all-gathered prototypes.

* BYOL / ProPos PSA: ``v1 = −2·mean_i cos(p_i, z_i)``, ``v2 = mean_i (2 − 2 cos(p_i, z_i))``, z without gradient;
  the "sampled positive" of PSA is the Gaussian neighbour ``ṽ = v + σε`` of the online projection v.
* ProPos PSL: online prototypes ``μ_c = normalize(mean_{i: y_i=c} normalize(v_i))`` (gradient), target prototypes
  ``μ'_c = normalize(mean_{i: y_i=c} z_i)`` (none); over the clusters C_b present in the batch
  ``1/|C_b| Σ_{c∈C_b} −μ_cᵀμ'_c/τ + log(exp(μ_cᵀμ'_c/τ) + Σ_{j≠c} exp(μ_cᵀμ_j/τ))``, τ = 0.5. Absent clusters as
  ProPos: their logits are set to −10 (after the division by τ), so each adds e^{−10} to every present row's
  denominator, and their own rows are dropped from the mean.
* SimSiam: ``½D(p1, z2) + ½D(p2, z1)``, ``D(p, z) = −mean cos(p, stopgrad z)``.
* MoCo v2: ``CE([q·k⁺, q·queueᵀ]/T, 0)``; the queue is a ring buffer of keys (K % keys-per-step == 0).
* PCL: concentration ``φ_c = mean_{i∈c} ‖v_i − c‖ / log(n_c + 10)`` (clusters with ≤ 1 point: max φ), clipped to
  its [10th, 90th] percentiles (numpy's linear interpolation), scaled to mean T; ProtoNCE
  ``CE([q·c_{y_i}/φ_{y_i}, q·c_neg/φ_neg], 0)`` with r negatives drawn with replacement from the prototypes of
  clusters absent from the batch, averaged over the granularities.
* Contrastive Clustering (Li et al. 2021): ``L_ins`` = NT-Xent of the 2N instance features (τ_I = 0.5),
  ``L_clu`` = NT-Xent of the 2K assignment columns (cosine, τ_C = 1), ``H = Σ_views log K + Σ_k p_k log p_k``
  (= log K − entropy of the batch-mean assignment p, ≥ 0, 0 for uniform p); total ``L_ins + L_clu + H``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from brb.contrastive import nt_xent

ABSENT_LOGIT = -10.0


# ---------------------------------------------------------------------------------------------- BYOL / ProPos PSA


def regression_loss(p: torch.Tensor, z: torch.Tensor, kind: str = "v1") -> torch.Tensor:
    """BYOL / ProPos alignment of predictions ``p`` (N, d) to targets ``z`` (N, d), z detached here: ``v1`` (ProPos's
    v1 path) ``−2·mean cos(p, z)`` ∈ [−2, 2]; ``v2`` (BYOL, ProPos's v2 path) ``mean(2 − 2 cos(p, z))`` ∈ [0, 4]. The
    two differ by the constant 2 (same gradient)."""
    if p.shape != z.shape:
        raise ValueError(f"regression_loss needs p and z of one shape, got {tuple(p.shape)} and {tuple(z.shape)}")
    cos = F.cosine_similarity(p, z.detach(), dim=1)
    if kind == "v1":
        return -2.0 * cos.mean()
    if kind == "v2":
        return (2.0 - 2.0 * cos).mean()
    raise ValueError(f"unknown regression loss kind {kind!r} (v1, v2)")


def positive_sampling(v: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """ProPos PSA's sampled positive ``v + std·ε``, ε ~ N(0, I) of v's shape (the online projection, before the
    predictor; ProPos: std = 0.001 after warm-up, 0 during it). ``std == 0`` returns ``v`` itself (no draw)."""
    if std == 0:
        return v
    eps = torch.randn(v.shape, generator=generator, dtype=v.dtype, device=v.device)
    return v + std * eps


# ---------------------------------------------------------------------------------------------- ProPos PSL


def cluster_prototypes(x: torch.Tensor, labels: torch.Tensor, n_clusters: int) -> torch.Tensor:
    """``normalize(mean_{i: y_i=c} x_i)`` for c = 0 … n_clusters−1 (n_clusters, d); a cluster without samples gets
    the zero vector (ProPos's ``compute_centers``: L1-normalised one-hot weights, then an L2 normalisation that
    leaves a zero row at zero)."""
    weight = F.one_hot(labels, n_clusters).T.to(x.dtype)
    weight = weight / weight.sum(dim=1, keepdim=True).clamp_min(1.0)
    return F.normalize(weight @ x, dim=1)


def present_clusters(labels: torch.Tensor, n_clusters: int) -> torch.Tensor:
    """Boolean mask (n_clusters,) of the clusters with at least one sample in ``labels``."""
    return torch.bincount(labels, minlength=n_clusters)[:n_clusters] > 0


def prototype_scattering_loss(
    online: torch.Tensor, target: torch.Tensor, labels: torch.Tensor, n_clusters: int, temperature: float = 0.5
) -> torch.Tensor:
    """ProPos PSL for one direction: ``online`` = online projections v (N, d, not normalised: normalised here, with
    gradient), ``target`` = target projections z (N, d; normalised again here and detached), ``labels`` (N,) k-means
    pseudo-labels in [0, n_clusters).

    Row c of the logits: ``μ_cᵀμ'_c/τ`` on the diagonal, ``μ_cᵀμ_j/τ`` elsewhere; columns of clusters absent from
    the batch are set to −10 (not removed: each absent cluster adds e^{−10} to every present row's softmax
    denominator, so the loss differs from the same batch with those clusters dropped from n_clusters by
    ``mean_c log(1 + n_absent·e^{−10}/S_c)`` ≤ n_absent·e^{−10}); rows of absent clusters are excluded from the mean.
    ProPos computes v's prototypes from v itself, not from PSA's noisy ṽ.
    """
    if labels.min() < 0 or labels.max() >= n_clusters:
        raise ValueError(f"pseudo-labels must lie in [0, {n_clusters}), got [{int(labels.min())}, {int(labels.max())}]")
    mu = cluster_prototypes(F.normalize(online, dim=1), labels, n_clusters)
    with torch.no_grad():
        mu_target = cluster_prototypes(F.normalize(target.detach(), dim=1), labels, n_clusters)
    pos = (mu * mu_target).sum(dim=1) / temperature
    eye = torch.eye(n_clusters, dtype=torch.bool, device=mu.device)
    logits = torch.where(eye, pos[:, None], mu @ mu.T / temperature)
    present = present_clusters(labels, n_clusters)
    logits = logits.masked_fill(~present[None, :], ABSENT_LOGIT)
    per_cluster = -pos + torch.logsumexp(logits, dim=1)
    return per_cluster[present].mean()


# ---------------------------------------------------------------------------------------------- SimSiam


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """SimSiam's symmetric ``½D(p1, z2) + ½D(p2, z1)`` with ``D(p, z) = −mean_i cos(p_i, stopgrad z_i)`` ∈ [−1, 1]."""
    d12 = -F.cosine_similarity(p1, z2.detach(), dim=1).mean()
    d21 = -F.cosine_similarity(p2, z1.detach(), dim=1).mean()
    return 0.5 * d12 + 0.5 * d21


# ---------------------------------------------------------------------------------------------- MoCo v2


def moco_infonce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """MoCo InfoNCE ``CE([q_i·k_i, q_i·queue_1, …, q_i·queue_K]/T, 0)`` (mean over i). ``q`` and ``k`` (N, d) and the
    queue rows (K, d) must be L2-normalised by the caller (not renormalised here). ``k`` and ``queue`` are detached:
    the key encoder gets no gradient. (ProPos stores its queue transposed, (d, K); here one key per row.)"""
    if q.shape != k.shape or q.dim() != 2:
        raise ValueError(f"moco_infonce needs queries and keys (N, d) of one shape, got {tuple(q.shape)} and {tuple(k.shape)}")
    if queue.dim() != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(f"moco_infonce needs a queue (K, {q.shape[1]}) of keys as rows, got {tuple(queue.shape)}")
    pos = (q * k.detach()).sum(dim=1, keepdim=True)
    neg = q @ queue.detach().T
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


@torch.no_grad()
def dequeue_and_enqueue(queue: torch.Tensor, ptr: int | torch.Tensor, keys: torch.Tensor) -> int:
    """Write ``keys`` (n, d) into the ring buffer ``queue`` (K, d) in place at rows ``ptr … ptr+n−1`` (replacing the
    oldest keys) and return the new pointer ``(ptr + n) % K``. As MoCo, K must be a multiple of n (2 × global batch
    with symmetric loss), so a write never wraps around the end."""
    size, n = queue.shape[0], keys.shape[0]
    if keys.dim() != 2 or keys.shape[1] != queue.shape[1]:
        raise ValueError(f"keys of shape {tuple(keys.shape)} do not fit a queue of shape {tuple(queue.shape)}")
    if n == 0 or size % n != 0:
        raise ValueError(f"the queue size K = {size} must be a multiple of the number of keys enqueued per step (n = {n}); "
                         "choose K or the batch size accordingly")
    ptr = int(ptr)
    if not 0 <= ptr < size or ptr % n != 0:
        raise ValueError(f"queue pointer {ptr} is not a multiple of {n} in [0, {size})")
    queue[ptr:ptr + n] = keys.detach().to(queue.dtype)
    return (ptr + n) % size


# ---------------------------------------------------------------------------------------------- PCL


@torch.no_grad()
def pcl_concentration(
    features: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor, temperature: float, eps: float = 1e-8
) -> torch.Tensor:
    """PCL's concentration φ (n_clusters,) of the clusters of ``features`` (N, d) under k-means ``labels`` (N,) and
    ``centroids`` (n_clusters, d) (no gradient):

    ``φ_c = mean_{i∈c} ‖v_i − c‖ / log(n_c + 10)``; clusters with ≤ 1 point get ``max_c φ_c`` (the max taken with
    those clusters at 0, as PCL); then ``φ ← max(φ, eps)`` (not in PCL: keeps φ > 0 when clusters collapse onto their
    centroids; all-degenerate clusters then give φ = T everywhere), clipped to the [10th, 90th] percentiles (linear
    interpolation, numpy's default) and scaled so that ``mean φ = temperature``."""
    n_clusters = centroids.shape[0]
    features = features.to(centroids.dtype)
    distances = torch.linalg.vector_norm(features - centroids[labels], dim=1)
    counts = torch.bincount(labels, minlength=n_clusters)[:n_clusters].to(centroids.dtype)
    sums = torch.zeros(n_clusters, dtype=centroids.dtype, device=centroids.device).index_add_(0, labels, distances)
    phi = sums / counts.clamp_min(1.0) / torch.log(counts + 10.0)
    small = counts <= 1
    phi = torch.where(small, torch.zeros_like(phi), phi)
    phi = torch.where(small, phi.max(), phi).clamp_min(eps)
    phi = phi.clamp(torch.quantile(phi, 0.1), torch.quantile(phi, 0.9))
    return temperature * phi / phi.mean()


def sample_negative_prototypes(
    labels: torch.Tensor, n_clusters: int, n_negatives: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n_negatives`` prototype ids drawn uniformly **with replacement** from the clusters absent from ``labels``
    (PCL's ``random.choices`` over the prototypes not in the batch). Raises if every cluster is in the batch.
    Drawn on the generator's device (CPU without one), returned on the labels' device."""
    candidates = torch.nonzero(~present_clusters(labels, n_clusters)).flatten()
    if len(candidates) == 0:
        raise ValueError(f"every one of the {n_clusters} prototypes has a sample in the batch: no negative prototype to "
                         "draw (use more clusters than the batch covers, as PCL's 250/500/1000)")
    device = generator.device if generator is not None else torch.device("cpu")
    picks = torch.randint(len(candidates), (n_negatives,), generator=generator, device=device)
    return candidates[picks.to(candidates.device)]


def proto_nce(
    q: torch.Tensor,
    labels: torch.Tensor,
    centroids: torch.Tensor,
    concentration: torch.Tensor,
    n_negatives: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """ProtoNCE of one granularity: ``CE([q_i·c_{y_i}/φ_{y_i}, q_i·c_{n_1}/φ_{n_1}, …, q_i·c_{n_r}/φ_{n_r}], 0)``
    (mean over i) with the r = ``n_negatives`` ids n_j from ``sample_negative_prototypes`` (shared by all samples of
    the batch; PCL: r = the MoCo queue size). ``q`` (N, d) normalised queries, ``centroids`` (K, d) and
    ``concentration`` (K,) from the E-step (constants: detached here)."""
    centroids, concentration = centroids.detach().to(q.dtype), concentration.detach().to(q.dtype)
    neg_ids = sample_negative_prototypes(labels, centroids.shape[0], n_negatives, generator).to(labels.device)
    pos = (q * centroids[labels]).sum(dim=1, keepdim=True) / concentration[labels][:, None]
    neg = q @ centroids[neg_ids].T / concentration[neg_ids][None, :]
    logits = torch.cat([pos, neg], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def proto_nce_multi(
    q: torch.Tensor,
    labels: Sequence[torch.Tensor],
    centroids: Sequence[torch.Tensor],
    concentrations: Sequence[torch.Tensor],
    n_negatives: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """PCL's ``L_proto``: the mean of ``proto_nce`` over the M granularities (one labels / centroids / concentration
    entry each, e.g. K_m = 250, 500, 1000), negatives drawn per granularity in order from one ``generator``."""
    if not len(labels) == len(centroids) == len(concentrations) > 0:
        raise ValueError(f"need as many labels, centroids and concentrations (≥ 1), got {len(labels)}, {len(centroids)}, "
                         f"{len(concentrations)}")
    terms = [proto_nce(q, y, c, phi, n_negatives, generator) for y, c, phi in zip(labels, centroids, concentrations)]
    return torch.stack(terms).mean()


# ---------------------------------------------------------------------------------------------- Contrastive Clustering


def cc_instance_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """CC's instance-level loss: NT-Xent of the 2N instance features (N, d) of two views, τ_I = 0.5. This is
    ``brb.contrastive.nt_xent``: CC's ``InstanceLoss`` (positive + 2N − 2 negatives, CE summed / 2N) is the mean CE
    over the 2N samples of their similarities / τ to the 2N − 1 others, and CC's head output is L2-normalised, so
    nt_xent's own normalisation changes nothing (computed in float32)."""
    return nt_xent(z1, z2, temperature)


def cc_cluster_loss(c1: torch.Tensor, c2: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """CC's cluster-level loss: NT-Xent of the 2K **columns** of the two views' assignment matrices (N, K) with
    cosine similarity, τ_C = 1.0, mean CE over the 2K columns (CC's ``ClusterLoss``) = ``nt_xent(c1ᵀ, c2ᵀ)``.
    Symmetric in the two views. Needs K ≥ 2."""
    if c1.shape != c2.shape or c1.dim() != 2:
        raise ValueError(f"cc_cluster_loss needs two assignment matrices (N, K) of one shape, got {tuple(c1.shape)} and "
                         f"{tuple(c2.shape)}")
    return nt_xent(c1.T, c2.T, temperature)


def cc_entropy(c1: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """CC's term ``H = Σ_views (log K + Σ_k p_k log p_k)``, p the batch mean (K,) of a view's assignments (N, K):
    log K minus the entropy of p, **added** to the loss (``L = L_ins + L_clu + H``), so minimising it spreads the
    batch over the clusters. 0 for uniform p, log K per view for a one-hot p. ``0·log 0 = 0`` here (CC's
    ``p·log p`` gives NaN for an empty cluster)."""
    total = c1.new_zeros(())
    for c in (c1, c2):
        p = c.mean(dim=0)
        total = total + math.log(p.shape[0]) + torch.special.xlogy(p, p).sum()
    return total
