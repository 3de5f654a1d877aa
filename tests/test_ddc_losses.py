"""DDC and tensor-kernel UCO loss functions (brb/losses/ddc.py, brb/losses/kernels.py) checked by hand against the
formulas of tk-uco's TensorFlow code (Trosten et al.)."""

import math

import pytest
import torch

from brb.losses.ddc import (
    d_cs,
    ddc_loss,
    ddc_orthogonality,
    ddc_simplex,
    kernel_from_distances,
    median_midpoint,
    pairwise_sq_distances,
    sigma_squared,
    vector_kernel,
)
from brb.losses.kernels import (
    batch_matricize,
    eigh_masked,
    layer_weights,
    naive_kernel,
    tensor_distance,
    tensor_kernel,
    uco_loss,
)

F64 = torch.float64


def block_kernel(sizes):
    """Kernel that is 1 inside each cluster block and 0 across blocks."""
    return torch.block_diag(*[torch.ones(s, s, dtype=F64) for s in sizes])


def one_hot(labels, k):
    return torch.nn.functional.one_hot(torch.tensor(labels), k).to(F64)


# ---------------------------------------------------------------------------------------------- DDC terms


def test_d_cs_limits():
    torch.manual_seed(0)
    column = torch.rand(7, 1, dtype=F64)
    kernel = vector_kernel(torch.randn(7, 4, dtype=F64))
    assert d_cs(column.repeat(1, 3), kernel).item() == pytest.approx(1.0, abs=1e-12)  # identical columns

    a = one_hot([0, 0, 1, 1, 2, 2], 3)  # separated clusters: every a_pᵀKa_q (p ≠ q) is 0 → clamped to 1e-9
    value = d_cs(a, block_kernel([2, 2, 2])).item()
    assert value == pytest.approx(1e-9 / 4, rel=1e-9)  # 2/(3·2) · 3 pairs · 1e-9 / sqrt(4·4)

    # a hand-computed intermediate case: k = 2, K = I → a_1ᵀa_2 / (‖a_1‖‖a_2‖)
    a = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]], dtype=F64)
    assert d_cs(a, torch.eye(3, dtype=F64)).item() == pytest.approx(0.25 / 1.25, rel=1e-12)


def test_orthogonality_term():
    assert ddc_orthogonality(torch.eye(3, dtype=F64)).item() == 0.0  # one-hot, pairwise orthogonal rows
    uniform = torch.full((5, 4), 0.25, dtype=F64)  # (AAᵀ)_ij = 1/4 → 2/(5·4) · 10 · 1/4
    assert ddc_orthogonality(uniform).item() == pytest.approx(0.25, rel=1e-12)


@pytest.mark.parametrize("k", [2, 3])
def test_simplex_term_one_hot_limit(k):
    # one-hot rows in k clusters of 2 with a block kernel: M_iq = 1 (own corner) or e^{-2}, so d_cs(M, K) is
    # (2u + (k−2)u²) / (1 + (k−1)u²) with u = e^{-2}, not 0; uniform rows give M with identical columns → 1
    u = math.exp(-2.0)
    labels = [c for c in range(k) for _ in range(2)]
    kernel = block_kernel([2] * k)
    expected = (2 * u + (k - 2) * u**2) / (1 + (k - 1) * u**2)
    assert ddc_simplex(one_hot(labels, k), kernel).item() == pytest.approx(expected, rel=1e-12)
    assert ddc_simplex(torch.full((2 * k, k), 1.0 / k, dtype=F64), kernel).item() == pytest.approx(1.0, rel=1e-12)


def test_sigma_heuristic_by_hand():
    hidden = torch.tensor([[0.0], [1.0], [3.0]], dtype=F64, requires_grad=True)
    d = pairwise_sq_distances(hidden)  # [[0,1,9],[1,0,4],[9,4,0]]: median of the 9 entries (3 zeros) = 1
    assert torch.allclose(d, torch.tensor([[0.0, 1, 9], [1, 0, 4], [9, 4, 0]], dtype=F64))
    s2 = sigma_squared(d)
    assert s2.item() == pytest.approx(0.15) and not s2.requires_grad
    kernel = kernel_from_distances(d, s2)
    assert kernel[0, 1].item() == pytest.approx(math.exp(-1.0 / 0.3)) and kernel[0, 0].item() == 1.0
    # even count: the midpoint of the two middle values (TF), not torch.median's lower one
    assert median_midpoint(torch.tensor([[0.0, 4.0], [4.0, 0.0]])).item() == 2.0
    assert torch.median(torch.tensor([0.0, 4.0, 4.0, 0.0])).item() == 0.0


def test_no_gradient_through_sigma():
    torch.manual_seed(1)
    a = torch.softmax(torch.randn(8, 3, dtype=F64), dim=1)
    h0 = torch.randn(8, 5, dtype=F64)
    s2 = sigma_squared(pairwise_sq_distances(h0)).item()
    grads = []
    for sigma2 in (None, s2):  # heuristic vs. the same value passed in as a constant
        h = h0.clone().requires_grad_()
        ddc_loss(a, h, sigma2=sigma2)["total"].backward()
        grads.append(h.grad)
    assert torch.equal(grads[0], grads[1])


def test_tf_pdist_gradient():
    # TF's custom pdist gradient 4(X·rowsum(G) − GX) equals autograd for a symmetric upstream G, not otherwise
    torch.manual_seed(2)
    x0 = torch.randn(6, 3, dtype=F64)
    w = torch.rand(6, 6, dtype=F64)
    for weight in (w + w.T, w):
        grads = []
        for tf_gradient in (True, False):
            x = x0.clone().requires_grad_()
            (weight * pairwise_sq_distances(x, tf_gradient=tf_gradient)).sum().backward()
            grads.append(x.grad)
        assert torch.allclose(grads[0], 4 * (x0 * weight.sum(1, keepdim=True) - weight @ x0))
        assert torch.allclose(grads[0], grads[1]) == torch.equal(weight, weight.T)


def test_ddc_loss_finite_and_differentiable():
    torch.manual_seed(3)
    logits = torch.randn(24, 4, requires_grad=True)
    hidden = torch.randn(24, 10, requires_grad=True)
    a = torch.softmax(logits, dim=1)
    out = ddc_loss(a, hidden)
    assert set(out) == {"ddc_1", "ddc_2", "ddc_3", "total"}
    assert torch.allclose(out["total"], out["ddc_1"] + out["ddc_2"] + out["ddc_3"])
    assert all(0.0 < v.item() < 1.0 for k, v in out.items() if k != "total")
    out["total"].backward()
    for t in (logits, hidden):
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------ tensor kernel


def qr_projection_distance(x):
    """Σ_modes ‖P_a − P_b‖_F² with P the projection onto the row space of each matricization, from QR."""
    n = x.shape[0]
    out = torch.zeros(n, n, dtype=x.dtype)
    for mode in range(1, x.dim()):
        mats = batch_matricize(x, mode)
        projections = []
        for m in mats:
            q, _ = torch.linalg.qr(m.T)  # (P, d_mode), orthonormal basis of the row space
            projections.append(q @ q.T)
        for i in range(n):
            for j in range(n):
                out[i, j] += (projections[i] - projections[j]).pow(2).sum()
    return out


def test_tensor_distance_properties():
    torch.manual_seed(4)
    x = torch.randn(5, 3, 4, 5, dtype=F64)  # every mode has full row rank (3 ≤ 20, 4 ≤ 15, 5 ≤ 12)
    d = tensor_distance(x)
    assert torch.allclose(d, d.T, atol=1e-10)
    assert d.diagonal().abs().max() < 1e-5
    assert torch.allclose(d, qr_projection_distance(x), rtol=1e-5, atol=1e-5)
    assert (d + torch.eye(5, dtype=F64)).min() > 0.5  # random samples are far apart
    scaled = tensor_distance(torch.stack([x[0], 3.7 * x[0], -2.0 * x[0]]))
    assert scaled.abs().max() < 1e-5  # positive (and negative) rescaling spans the same subspaces
    # channels-first vs channels-last (TF) give the same distance: only the mode order differs
    assert torch.allclose(tensor_distance(x.permute(0, 2, 3, 1)), d, atol=1e-10)


def test_tensor_distance_rank_deficient_mode_offset():
    # TF uses d_i, not the rank: a channel mode with d = 5 > 2·2 = P has rank 4, so D_C(a, a) = 2(5 − 4) = 2
    torch.manual_seed(11)
    x = torch.randn(4, 5, 2, 2, dtype=F64)
    per_mode = tensor_distance(x, per_mode=True)
    assert torch.allclose(per_mode[0].diagonal(), torch.full((4,), 2.0, dtype=F64), atol=1e-4)
    assert per_mode[1:].diagonal(dim1=1, dim2=2).abs().max() < 1e-4


def test_tensor_kernel_is_product_of_mode_kernels():
    torch.manual_seed(5)
    x = torch.randn(6, 3, 4, 4, dtype=F64)
    per_mode = tensor_distance(x, per_mode=True)
    assert per_mode.shape == (3, 6, 6)
    assert torch.allclose(per_mode.sum(0), tensor_distance(x))
    s2 = sigma_squared(per_mode.sum(0))  # one σ² from the summed distance, as TF
    product = torch.prod(torch.exp(-per_mode / (2 * s2)), dim=0)
    assert torch.allclose(tensor_kernel(x), product, atol=1e-12)


def test_naive_kernel_flattens():
    torch.manual_seed(6)
    x = torch.randn(5, 2, 3, 3, dtype=F64)
    flat = x.reshape(5, -1)
    d = torch.cdist(flat, flat).pow(2)
    assert torch.allclose(naive_kernel(x), torch.exp(-d / (2 * sigma_squared(d))), atol=1e-10)


# --------------------------------------------------------------------------------------- eigh backward


def dead_channel_batch():
    torch.manual_seed(7)
    x = torch.relu(torch.randn(6, 4, 3, 3, dtype=F64))
    x[:, 1] = 0.0  # two all-zero (dead ReLU) channels → repeated zero eigenvalues of the channel-mode Gram
    x[:, 2] = 0.0
    return x


@pytest.mark.parametrize("masked", [True, False])
def test_eigh_backward_with_dead_channels(masked):
    x = dead_channel_batch().requires_grad_()
    a = torch.softmax(torch.randn(6, 3, dtype=F64), dim=1)
    eigh = eigh_masked if masked else torch.linalg.eigh
    d = tensor_distance(x, eigh=eigh)
    loss = d_cs(a, torch.exp(-d / (2 * sigma_squared(d))))
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(x.grad).all() == masked  # the stock backward divides by λ_j − λ_i = 0


def test_eigh_masked_gradcheck():
    torch.manual_seed(8)
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=F64))
    x = (q @ torch.diag(torch.tensor([1.0, 2.0, 3.5, 5.0], dtype=F64)) @ q.T).requires_grad_()
    # eigenvectors enter squared: invariant to their sign; eigh reads the lower triangle (the gradient is tril)
    assert torch.autograd.gradcheck(lambda m: tuple(o ** p for o, p in zip(eigh_masked(m), (1, 2))), (x,))


def test_eigh_masked_matches_stock_on_distinct_eigenvalues():
    torch.manual_seed(9)
    x0 = torch.randn(2, 4, 6, dtype=F64)
    w = torch.randn(2, 4, 4, dtype=F64)
    grads = []
    for eigh in (eigh_masked, torch.linalg.eigh):
        x = x0.clone().requires_grad_()
        vals, vecs = eigh(x @ x.mT)
        (vals.sum() + (w * vecs.pow(2)).sum()).backward()
        grads.append(x.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-10)


# ------------------------------------------------------------------------------------------------- UCO


def test_layer_weights():
    assert layer_weights(2, "constant") == [1.0, 1.0]
    assert layer_weights(4, "linear") == [0.25, 0.5, 0.75, 1.0]
    assert layer_weights(3, "exp") == pytest.approx([0.01, 0.1, 1.0])
    with pytest.raises(ValueError):
        layer_weights(2, "cubic")


def test_uco_loss():
    torch.manual_seed(10)
    logits = torch.randn(8, 3, requires_grad=True)
    outs = [torch.relu(torch.randn(8, 4, 6, 6)).requires_grad_(), torch.relu(torch.randn(8, 4, 2, 2)).requires_grad_()]
    a = torch.softmax(logits, dim=1)
    terms = uco_loss(a, outs, weights="exp")
    assert set(terms) == {"0", "1", "total"}
    assert terms["0"].item() == pytest.approx(0.1 * d_cs(a, tensor_kernel(outs[0])).item(), rel=1e-5)
    assert terms["1"].item() == pytest.approx(d_cs(a, tensor_kernel(outs[1])).item(), rel=1e-5)
    terms["total"].backward()
    for t in (logits, *outs):  # A is not detached: the companion terms also train the clustering head
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    naive = uco_loss(a.detach(), [o.detach() for o in outs], weights=[1.0, 1.0], kernel="naive")
    assert naive["total"].item() == pytest.approx(sum(d_cs(a, naive_kernel(o)).item() for o in outs), rel=1e-5)
