"""DDC (Kampffmeyer et al. 2019) as in tk-uco's TensorFlow code (Trosten et al., ``src/tf_lib/loss.py``).

Mini-batch of n samples and k clusters: ``A`` (n×k) holds the softmax assignment rows α_i, ``hidden`` (n×h) the
clustering module's hidden layer. With a_p the p-th column of A and a kernel matrix K (n×n):

* ``D_ij = ‖h_i − h_j‖²``; ``σ² = 0.15 · median(D)`` over all n² entries (diagonal zeros included, midpoint
  median), without gradient, recomputed every batch (TF's ``sigma_mode = "otf"``);
  ``K_ij = exp(−D_ij / (2σ²))``.
* ``d_cs(A, K) = 2/(k(k−1)) · Σ_{p<q} a_pᵀKa_q / sqrt(a_pᵀKa_p · a_qᵀKa_q)``, the numerator clamped to ≥ 1e-9 and
  the squared denominator to ≥ 1e-18 (both clamps after the denominator is formed from the unclamped diagonal).
* ``L1 = d_cs(A, K)`` (between-cluster), ``L2 = 2/(n(n−1)) · Σ_{i<j} (AAᵀ)_ij`` (orthogonality),
  ``L3 = d_cs(M, K)`` with ``M_iq = exp(−‖α_i − e_q‖²)`` (simplex vertices); ``L_DDC = L1 + L2 + L3``.
"""

from __future__ import annotations

import torch

EPSILON = 1e-9
REL_SIGMA = 0.15


class _PdistTF(torch.autograd.Function):
    """``D_ij = ‖x_i‖² − 2x_iᵀx_j + ‖x_j‖²`` with TF's hand-written gradient ``4(X·rowsum(G) − G X)``.

    That gradient is exact only for a symmetric upstream gradient G. ``d_cs`` gives an asymmetric one (the
    ``a_p a_qᵀ`` of its numerators), so tk-uco's networks were trained with this (not the exact) gradient.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _pdist_forward(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 4.0 * (x * grad.sum(dim=1, keepdim=True) - grad @ x)


def _pdist_forward(x: torch.Tensor) -> torch.Tensor:
    sq = x.pow(2).sum(dim=1, keepdim=True)
    return sq - 2.0 * x @ x.T + sq.T


def pairwise_sq_distances(x: torch.Tensor, tf_gradient: bool = True) -> torch.Tensor:
    """Squared Euclidean distances between the rows of ``x`` (further axes flattened), TF's expanded form (not
    clamped, so the diagonal may be a rounding error below zero).

    ``tf_gradient=True`` (default, tk-uco's ``kernel.pdist``) backpropagates TF's custom gradient
    ``4(X·rowsum(G) − G X)``; ``False`` uses plain autograd (the exact gradient). They agree when the upstream
    gradient G is symmetric.
    """
    x = x.reshape(x.shape[0], -1)
    return _PdistTF.apply(x) if tf_gradient else _pdist_forward(x)


def median_midpoint(x: torch.Tensor) -> torch.Tensor:
    """Median of all entries, the two middle values averaged for an even count (TF's
    ``tfp.stats.percentile(x, 50, interpolation='midpoint')``; ``torch.median`` would return the lower one)."""
    flat = x.reshape(-1)
    m = flat.numel()
    lower = torch.kthvalue(flat, (m - 1) // 2 + 1).values
    upper = torch.kthvalue(flat, m // 2 + 1).values
    return 0.5 * (lower + upper)


def sigma_squared(distances: torch.Tensor, rel_sigma: float = REL_SIGMA) -> torch.Tensor:
    """Bandwidth heuristic ``σ² = rel_sigma · median(D)`` over all n² entries of ``D`` (diagonal included),
    detached: no gradient flows through it (TF's ``tf.stop_gradient``)."""
    with torch.no_grad():
        return rel_sigma * median_midpoint(distances.detach())


def kernel_from_distances(distances: torch.Tensor, sigma2: torch.Tensor | float) -> torch.Tensor:
    """Gaussian kernel ``K = exp(−D / (2σ²))`` (tk-uco's ``loss.kernel_from_distances``; its variable ``sigma``
    is σ²)."""
    return torch.exp(-distances / (2.0 * sigma2))


def vector_kernel(
    x: torch.Tensor, rel_sigma: float = REL_SIGMA, sigma2: torch.Tensor | float | None = None, tf_gradient: bool = True
) -> torch.Tensor:
    """Gaussian kernel matrix of the rows of ``x`` (further axes flattened) with ``σ² = rel_sigma · median(D)``
    unless ``sigma2`` is given (e.g. a running mean kept by the caller)."""
    distances = pairwise_sq_distances(x, tf_gradient=tf_gradient)
    if sigma2 is None:
        sigma2 = sigma_squared(distances, rel_sigma)
    return kernel_from_distances(distances, sigma2)


def triu_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of the strictly upper triangular part of a square matrix."""
    return torch.triu(x, diagonal=1).sum()


def d_cs(a: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Cauchy–Schwarz divergence term over the k columns a_p of ``a`` (n×k):
    ``2/(k(k−1)) · Σ_{p<q} a_pᵀKa_q / sqrt(a_pᵀKa_p · a_qᵀKa_q)``.

    Guards as tk-uco: the denominator² is the outer product of the *unclamped* diagonal of ``AᵀKA``, then the
    numerators are clamped to ≥ 1e-9 and the denominator² to ≥ 1e-18 (no gradient through clamped entries).
    Identical columns give 1, columns with disjoint kernel support give ≈ 0.
    """
    k = a.shape[1]
    nom = a.T @ kernel @ a
    diag = torch.diagonal(nom)
    dnom_squared = diag[:, None] * diag[None, :]
    nom = nom.clamp_min(EPSILON)
    dnom_squared = dnom_squared.clamp_min(EPSILON**2)
    return 2.0 / (k * (k - 1)) * triu_sum(nom / torch.sqrt(dnom_squared))


def ddc_between(a: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """DDC L1: ``d_cs(A, K)``, the cluster-separation (between-cluster) term on the hidden-layer kernel."""
    return d_cs(a, kernel)


def ddc_orthogonality(a: torch.Tensor) -> torch.Tensor:
    """DDC L2: ``2/(n(n−1)) · Σ_{i<j} (AAᵀ)_ij``, pushing assignment rows of different samples to orthogonality."""
    n = a.shape[0]
    return 2.0 / (n * (n - 1)) * triu_sum(a @ a.T)


def simplex_memberships(a: torch.Tensor) -> torch.Tensor:
    """``M_iq = exp(−‖α_i − e_q‖²) = exp(−(‖α_i‖² − 2α_iq + 1))`` with e_q the q-th corner of the simplex."""
    sq_dist = a.pow(2).sum(dim=1, keepdim=True) - 2.0 * a + 1.0
    return torch.exp(-sq_dist)


def ddc_simplex(a: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """DDC L3: ``d_cs(M, K)`` with M the simplex-vertex memberships. For one-hot rows in k equal clusters and a
    block kernel it is ``(2u + (k−2)u²) / (1 + (k−1)u²)`` with ``u = e^{−2}``, not 0 (M never vanishes)."""
    return d_cs(simplex_memberships(a), kernel)


def ddc_loss(
    a: torch.Tensor,
    hidden: torch.Tensor,
    rel_sigma: float = REL_SIGMA,
    sigma2: torch.Tensor | float | None = None,
    tf_gradient: bool = True,
) -> dict[str, torch.Tensor]:
    """DDC loss of assignments ``a`` (n×k softmax rows) and the hidden representation ``hidden`` (n×h, in tk-uco the
    post-BatchNorm vector of the clustering head): ``{"ddc_1": L1, "ddc_2": L2, "ddc_3": L3, "total": L1+L2+L3}``
    (L1 and L3 share one kernel). ``sigma2`` overrides the per-batch
    heuristic; ``tf_gradient`` selects TF's pdist gradient (see ``pairwise_sq_distances``)."""
    distances = pairwise_sq_distances(hidden, tf_gradient=tf_gradient)
    if sigma2 is None:
        sigma2 = sigma_squared(distances, rel_sigma)
    kernel = kernel_from_distances(distances, sigma2)
    l1 = ddc_between(a, kernel)
    l2 = ddc_orthogonality(a)
    l3 = ddc_simplex(a, kernel)
    return {"ddc_1": l1, "ddc_2": l2, "ddc_3": l3, "total": l1 + l2 + l3}
