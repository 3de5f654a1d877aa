"""Tensor kernels and unsupervised companion objectives (UCO) of tk-uco (Trosten et al.; ``src/tf_lib/kernel.py``,
``eig.py``, ``loss.py: UCO``), after the TensorFlow code.

Tensor distance of two samples X_a, X_b ∈ R^{d_1×…×d_r} (batch axis excluded): for each mode i, matricize
``X_(i) ∈ R^{d_i × Π_{j≠i} d_j}``, take an orthonormal basis of its row space from the eigendecomposition
``X_(i)X_(i)ᵀ = UΛUᵀ`` as ``V = X_(i)ᵀ U (relu(Λ) + 1e-6)^{-1/2}`` (d_i columns: no rank cut-off, directions with
λ ≈ 0 are scaled to ≈ 0 by the 1e-6), and the chordal (projection) distance
``D_i(a, b) = 2(d_i − ‖V_aᵀV_b‖_F²)`` (= ‖V_aV_aᵀ − V_bV_bᵀ‖_F² for full row rank). Then ``D = Σ_i relu(D_i)`` and
``K = exp(−D / (2σ²)) = Π_i exp(−relu(D_i) / (2σ²))`` with one ``σ² = 0.15 · median(D)`` (no gradient).

If a mode is rank deficient (d_i > Π_{j≠i} d_j, or dead channels) TF still uses d_i, so its D_i carries an offset
``2d_i − rank_a − rank_b`` (the diagonal is then not zero); this is kept, as in the TF code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from brb.losses.ddc import REL_SIGMA, d_cs, kernel_from_distances, pairwise_sq_distances, sigma_squared

EIGH_EPS = 1e-8
ORTHO_EPS = 1e-6


class EighMasked(torch.autograd.Function):
    """Symmetric eigendecomposition (ascending eigenvalues) of the lower triangle of ``x`` (…, n, n), with TF's
    ``linalg_grad`` backward as modified in tk-uco's ``_eig_cg``:

    ``∂x = tril_sym(V (diag(∂λ) + F ∘ (Vᵀ∂V)) Vᵀ)`` with ``F_ij = 1/(λ_j − λ_i)``, set to 0 on the diagonal and
    where ``|λ_j − λ_i| < 1e-8``; ``tril_sym(G)`` is the lower triangle of ``G + Gᵀ`` with the diagonal halved (the
    exact gradient of a function that reads the lower triangle only). Repeated eigenvalues (e.g. Gram matrices of
    maps with all-zero channels) thus give finite gradients where ``torch.linalg.eigh``'s backward gives inf/NaN.
    """

    @staticmethod
    def forward(ctx, x, eps=EIGH_EPS):
        vals, vecs = torch.linalg.eigh(x)
        ctx.save_for_backward(vals, vecs)
        ctx.eps = eps
        return vals, vecs

    @staticmethod
    def backward(ctx, grad_vals, grad_vecs):
        vals, vecs = ctx.saved_tensors
        inner = torch.zeros_like(vecs)
        if grad_vecs is not None:
            denom = vals.unsqueeze(-2) - vals.unsqueeze(-1)  # denom[i, j] = λ_j − λ_i
            keep = denom.abs() >= ctx.eps
            f = torch.where(keep, 1.0 / torch.where(keep, denom, torch.ones_like(denom)), torch.zeros_like(denom))
            f = f * (1.0 - torch.eye(vals.shape[-1], dtype=vals.dtype, device=vals.device))
            inner = f * (vecs.mT @ grad_vecs)
        if grad_vals is not None:
            inner = inner + torch.diag_embed(grad_vals)
        grad = vecs @ inner @ vecs.mT
        grad = torch.tril(grad + grad.mT)
        grad = grad - 0.5 * torch.diag_embed(torch.diagonal(grad, dim1=-2, dim2=-1))
        return grad, None


def eigh_masked(x: torch.Tensor, eps: float = EIGH_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """``(eigenvalues, eigenvectors)`` of symmetric ``x`` with the masked backward of ``EighMasked``."""
    return EighMasked.apply(x, eps)


Eigh = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def batch_matricize(x: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-``mode`` matricization of a batch (N, d_1, …, d_r) → (N, d_mode, Π_{j≠mode} d_j) (mode ≥ 1; the other
    modes in their original order, as TF's ``stack(unstack(X, axis=i), axis=1)``)."""
    if mode < 1:
        raise ValueError("cannot matricize along the batch axis")
    return x.movedim(mode, 1).reshape(x.shape[0], x.shape[mode], -1)


def orthonormal_row_basis(x: torch.Tensor, eigh: Eigh = eigh_masked) -> torch.Tensor:
    """``V = Xᵀ U (relu(Λ) + 1e-6)^{-1/2}`` for a batch of matrices X (N, d, P), ``XXᵀ = UΛUᵀ``: (N, P, d), columns
    orthonormal up to the 1e-6 regulariser (≈ 0 for λ ≈ 0)."""
    vals, vecs = eigh(x @ x.mT)
    v = x.mT @ vecs
    return v / torch.sqrt(torch.relu(vals).unsqueeze(-2) + ORTHO_EPS)


def projection_distance(v: torch.Tensor) -> torch.Tensor:
    """``D(a, b) = 2(d − ‖V_aᵀV_b‖_F²)`` for bases v (N, P, d) (tk-uco's ``projection_dist``, computed as one matmul
    instead of its ``einsum("ali,blj->abij")``)."""
    n, p, d = v.shape
    flat = v.mT.reshape(n * d, p)
    cross = (flat @ flat.T).reshape(n, d, n, d)
    return 2.0 * (d - cross.pow(2).sum(dim=(1, 3)))


def tensor_distance(x: torch.Tensor, per_mode: bool = False, eigh: Eigh = eigh_masked) -> torch.Tensor:
    """Tensor (chordal) distance matrix of a batch (N, d_1, …, d_r), r ≥ 2: ``Σ_i relu(D_i)`` (N, N), or the stack of
    ``relu(D_i)`` (r, N, N) with ``per_mode=True``. The mode order does not matter (channels-first here,
    channels-last in TF give the same D). ``eigh`` can be swapped (e.g. ``torch.linalg.eigh`` in tests)."""
    if x.dim() < 3:
        raise ValueError(f"tensor distance needs samples with ≥ 2 modes, got shape {tuple(x.shape)}")
    per = torch.stack([torch.relu(projection_distance(orthonormal_row_basis(batch_matricize(x, i), eigh)))
                       for i in range(1, x.dim())])
    return per if per_mode else per.sum(dim=0)


def tensor_kernel(
    x: torch.Tensor, rel_sigma: float = REL_SIGMA, sigma2: torch.Tensor | float | None = None, eigh: Eigh = eigh_masked
) -> torch.Tensor:
    """Tensor kernel ``K = exp(−D / (2σ²))`` of a batch (N, d_1, …, d_r) with D from ``tensor_distance`` and
    ``σ² = rel_sigma · median(D)`` (all N² entries, no gradient) unless ``sigma2`` is given; equal to the product
    over modes of Gaussians of the per-mode distances with that one σ²."""
    distances = tensor_distance(x, eigh=eigh)
    if sigma2 is None:
        sigma2 = sigma_squared(distances, rel_sigma)
    return kernel_from_distances(distances, sigma2)


def naive_kernel(
    x: torch.Tensor, rel_sigma: float = REL_SIGMA, sigma2: torch.Tensor | float | None = None, tf_gradient: bool = True
) -> torch.Tensor:
    """Naive kernel: flatten each sample and use the Gaussian vector kernel ``exp(−‖x_a − x_b‖² / (2σ²))`` with
    ``σ² = rel_sigma · median`` (``tf_gradient`` as in ``brb.losses.ddc.pairwise_sq_distances``)."""
    distances = pairwise_sq_distances(x, tf_gradient=tf_gradient)
    if sigma2 is None:
        sigma2 = sigma_squared(distances, rel_sigma)
    return kernel_from_distances(distances, sigma2)


def layer_weights(n: int, kind: str = "constant") -> list[float]:
    """UCO layer weights w_l, l = 0 … n−1 (tk-uco's ``get_uco_weights``): ``constant`` 1; ``linear`` (l+1)/n;
    ``exp`` 10^l / 10^(n−1)."""
    if kind == "constant":
        return [1.0] * n
    if kind == "linear":
        return [(i + 1) / n for i in range(n)]
    if kind == "exp":
        return [10.0 ** (i - (n - 1)) for i in range(n)]
    raise ValueError(f"unknown UCO weighting {kind!r} (constant, linear, exp)")


def uco_loss(
    a: torch.Tensor,
    layer_outputs: Sequence[torch.Tensor],
    weights: str | Sequence[float] = "constant",
    kernel: str = "tensor",
    rel_sigma: float = REL_SIGMA,
) -> dict[str, torch.Tensor]:
    """Unsupervised companion objectives ``w_l · d_cs(A, K^(l))`` for the intermediate outputs X^(l) (each its own
    per-batch σ_l²): ``{"0": …, "1": …, "total": Σ_l}``. ``weights`` is a ``layer_weights`` kind or explicit
    values; ``kernel`` is ``"tensor"``, ``"naive"`` or ``"auto"`` (tensor for maps, naive for vectors, as tk-uco).
    λ (tk-uco's ``uco_lambda = 0.01``) is **not** applied here:
    the caller adds ``λ · total`` to the DDC/DEC loss. ``a`` is not detached (``uco_assignment_gradient = True``);
    detach it before the call for the alternative."""
    if isinstance(weights, str):
        weights = layer_weights(len(layer_outputs), weights)
    if len(weights) != len(layer_outputs):
        raise ValueError(f"{len(weights)} UCO weights for {len(layer_outputs)} layer outputs")
    if kernel not in ("tensor", "naive", "auto"):
        raise ValueError(f"unknown UCO kernel {kernel!r} (tensor, naive, auto)")
    terms: dict[str, torch.Tensor] = {}
    for i, (w, x) in enumerate(zip(weights, layer_outputs)):
        kind = kernel if kernel != "auto" else ("tensor" if x.dim() > 2 else "naive")
        k = tensor_kernel(x, rel_sigma) if kind == "tensor" else naive_kernel(x, rel_sigma)
        terms[str(i)] = w * d_cs(a, k)
    terms["total"] = sum(terms.values())
    return terms
