"""ProPos / BYOL / SimSiam / MoCo / PCL / CC losses (brb/losses/ssl.py) and the EMA / lr / momentum schedules
(brb/losses/schedules.py), checked against hand computations on tiny tensors (plain-Python loops, not the code)."""

import math

import pytest
import torch
import torch.nn as nn

from brb.contrastive import nt_xent
from brb.losses.schedules import ema_update_, lr_at, momentum_at, scaled_lr
from brb.losses.ssl import (
    cc_cluster_loss,
    cc_entropy,
    cc_instance_loss,
    cluster_prototypes,
    dequeue_and_enqueue,
    moco_infonce,
    pcl_concentration,
    positive_sampling,
    proto_nce,
    proto_nce_multi,
    prototype_scattering_loss,
    regression_loss,
    sample_negative_prototypes,
    simsiam_loss,
)

F64 = torch.float64
E10 = math.exp(-10.0)


def t(rows):
    return torch.tensor(rows, dtype=F64)


# ---------------------------------------------------------------------------------------------- plain-Python helpers


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def unit(a):
    n = math.sqrt(dot(a, a))
    return [x / n for x in a]


def hand_prototypes(rows, labels, k):
    """normalize(mean of normalize(rows)) per cluster, by loops; None for an empty cluster."""
    protos = []
    for c in range(k):
        members = [unit(r) for r, y in zip(rows, labels) if y == c]
        if not members:
            protos.append(None)
            continue
        mean = [sum(col) / len(members) for col in zip(*members)]
        protos.append(unit(mean))
    return protos


def hand_psl(online, target, labels, k, tau, n_absent=0):
    """ProPos PSL over the present clusters; each absent cluster adds e^{-10} to every denominator."""
    mu, mu_t = hand_prototypes(online, labels, k), hand_prototypes(target, labels, k)
    terms = []
    for c in range(k):
        if mu[c] is None:
            continue
        pos = dot(mu[c], mu_t[c]) / tau
        denom = math.exp(pos) + n_absent * E10
        for j in range(k):
            if j != c and mu[j] is not None:
                denom += math.exp(dot(mu[c], mu[j]) / tau)
        terms.append(-pos + math.log(denom))
    return sum(terms) / len(terms)


def hand_nt_xent(items, positive_of, tau):
    """Mean over items of −s(i, pos)/τ + log Σ_{j≠i} exp(s(i, j)/τ), cosine similarity."""
    items = [unit(x) for x in items]
    total = 0.0
    for i, x in enumerate(items):
        denom = sum(math.exp(dot(x, y) / tau) for j, y in enumerate(items) if j != i)
        total += -dot(x, items[positive_of[i]]) / tau + math.log(denom)
    return total / len(items)


# ---------------------------------------------------------------------------------------------- BYOL / ProPos PSA


def test_regression_loss_identical_orthogonal_opposite():
    p = t([[1.0, 0.0], [0.0, 2.0]])
    assert regression_loss(p, 3 * p, "v1").item() == pytest.approx(-2.0)
    assert regression_loss(p, 3 * p, "v2").item() == pytest.approx(0.0, abs=1e-12)
    ortho = t([[0.0, 5.0], [-1.0, 0.0]])
    assert regression_loss(p, ortho, "v1").item() == pytest.approx(0.0, abs=1e-12)
    assert regression_loss(p, ortho, "v2").item() == pytest.approx(2.0)
    assert regression_loss(p, -p, "v1").item() == pytest.approx(2.0)
    assert regression_loss(p, -p, "v2").item() == pytest.approx(4.0)
    # mixed batch: cos = 1 and 0 → v1 = −2·½ = −1, v2 = mean(0, 2) = 1
    mixed = t([[2.0, 0.0], [1.0, 0.0]])
    assert regression_loss(p, mixed, "v1").item() == pytest.approx(-1.0)
    assert regression_loss(p, mixed, "v2").item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        regression_loss(p, p, "v3")


def test_regression_loss_stops_gradient_into_target():
    p = t([[1.0, 2.0], [0.5, -1.0]]).requires_grad_()
    z = t([[2.0, 1.0], [1.0, 1.0]]).requires_grad_()
    regression_loss(p, z).backward()
    assert z.grad is None and p.grad is not None and p.grad.abs().sum() > 0


def test_positive_sampling():
    v = t([[1.0, 2.0, 3.0]])
    assert positive_sampling(v, 0.0) is v
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    expected = v + 0.5 * torch.randn(v.shape, generator=g2, dtype=F64)
    assert torch.equal(positive_sampling(v, 0.5, g1), expected)
    assert not torch.equal(expected, v)


# ---------------------------------------------------------------------------------------------- ProPos PSL

ONLINE = [[1.0, 0.2, 0.0], [0.8, -0.1, 0.3], [0.1, 1.0, 0.2], [-0.2, 0.9, 0.1], [0.0, 0.3, 1.0], [0.4, -0.2, 0.7]]
TARGET = [[0.9, 0.1, 0.2], [1.0, 0.3, -0.1], [0.2, 0.8, 0.0], [0.0, 1.0, 0.4], [0.1, 0.1, 0.9], [-0.3, 0.2, 1.0]]
LABELS3 = [0, 0, 1, 1, 2, 2]


def test_cluster_prototypes_empty_cluster_is_zero():
    protos = cluster_prototypes(t([[3.0, 4.0], [3.0, 4.0]]), torch.tensor([1, 1]), 3)
    assert torch.allclose(protos, t([[0.0, 0.0], [0.6, 0.8], [0.0, 0.0]]))


def test_psl_matches_hand_prototype_infonce():
    for tau in (0.5, 0.2):
        loss = prototype_scattering_loss(t(ONLINE), t(TARGET), torch.tensor(LABELS3), 3, tau)
        assert loss.item() == pytest.approx(hand_psl(ONLINE, TARGET, LABELS3, 3, tau), rel=1e-12)


def test_psl_scale_invariance_and_gradients():
    online = t(ONLINE).requires_grad_()
    target = t(TARGET).requires_grad_()
    loss = prototype_scattering_loss(online, target, torch.tensor(LABELS3), 3)
    loss.backward()
    assert target.grad is None
    assert torch.isfinite(online.grad).all() and online.grad.abs().sum() > 0
    # v is normalised per sample, z too (normalising inside): rescaling rows leaves the loss unchanged
    scale = t([[2.0], [0.5], [3.0], [1.0], [7.0], [0.1]])
    again = prototype_scattering_loss(t(ONLINE) * scale, t(TARGET) * scale.flip(0), torch.tensor(LABELS3), 3)
    assert again.item() == pytest.approx(loss.item(), rel=1e-12)


def test_psl_absent_cluster_masked():
    """Cluster 1 of 4 has no sample: its row is dropped, its column is −10 (a e^{-10} in each denominator), so the loss
    equals the 3-cluster loss of the relabelled batch up to exactly that term; the position of the gap does not matter."""
    relabel = {0: 0, 1: 2, 2: 3}  # clusters 0, 2, 3 present, 1 absent
    labels4 = torch.tensor([relabel[y] for y in LABELS3])
    loss4 = prototype_scattering_loss(t(ONLINE), t(TARGET), labels4, 4).item()
    loss3 = prototype_scattering_loss(t(ONLINE), t(TARGET), torch.tensor(LABELS3), 3).item()
    assert loss4 == pytest.approx(hand_psl(ONLINE, TARGET, LABELS3, 3, 0.5, n_absent=1), rel=1e-12)
    assert 0.0 < loss4 - loss3 < E10  # log(1 + e^{-10}/S) with S > 1
    # gap at the end (cluster 3 absent) gives the same value as the gap at 1; two absent clusters give two e^{-10}
    loss4_end = prototype_scattering_loss(t(ONLINE), t(TARGET), torch.tensor(LABELS3), 4).item()
    assert loss4_end == pytest.approx(loss4, rel=1e-12)
    loss5 = prototype_scattering_loss(t(ONLINE), t(TARGET), torch.tensor(LABELS3), 5).item()
    assert loss5 == pytest.approx(hand_psl(ONLINE, TARGET, LABELS3, 3, 0.5, n_absent=2), rel=1e-12)
    # the gradient is still finite with an empty (zero) prototype in the graph
    online = t(ONLINE).requires_grad_()
    prototype_scattering_loss(online, t(TARGET), labels4, 4).backward()
    assert torch.isfinite(online.grad).all()
    with pytest.raises(ValueError):
        prototype_scattering_loss(t(ONLINE), t(TARGET), labels4, 3)


# ---------------------------------------------------------------------------------------------- SimSiam


def test_simsiam_loss():
    p = t([[1.0, 2.0], [-1.0, 0.5]])
    assert simsiam_loss(p, p, 2 * p, 3 * p).item() == pytest.approx(-1.0)
    ortho = t([[-2.0, 1.0], [0.5, 1.0]])
    assert simsiam_loss(p, p, ortho, ortho).item() == pytest.approx(0.0, abs=1e-12)
    # D(p1, z2) = −1 (identical), D(p2, z1) = 0 (orthogonal) → −½
    z1, z2 = ortho.clone().requires_grad_(), p.clone().requires_grad_()
    p1, p2 = p.clone().requires_grad_(), p.clone().requires_grad_()
    loss = simsiam_loss(p1, p2, z1, z2)
    assert loss.item() == pytest.approx(-0.5)
    loss.backward()
    assert z1.grad is None and z2.grad is None and p2.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- MoCo


def test_moco_infonce_equal_similarities_is_log_1_plus_k():
    q = t([[0.6, 0.8], [1.0, 0.0]])
    queue = q[:1].repeat(5, 1)
    # every logit of row 0 is 1/T, of row 1 all are 0.6/T: CE = log(1 + K) for both
    k = torch.cat([q[:1], q[:1]])
    assert moco_infonce(q, k, queue, 0.07).item() == pytest.approx(math.log(6.0), rel=1e-10)


def test_moco_infonce_hand_value_and_shapes():
    q, k, queue = t([[1.0, 0.0]]), t([[1.0, 0.0]]), t([[0.0, 1.0], [-1.0, 0.0]])
    # logits [1, 0, −1]/T, T = 0.5 → −2 + log(e² + 1 + e⁻²)
    expected = -2.0 + math.log(math.exp(2.0) + 1.0 + math.exp(-2.0))
    assert moco_infonce(q, k, queue, 0.5).item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError):
        moco_infonce(q, t([[1.0, 0.0], [0.0, 1.0]]), queue)
    with pytest.raises(ValueError):
        moco_infonce(q, k, t([[1.0, 0.0, 0.0]]))


def test_queue_ring_buffer():
    queue = torch.zeros(4, 2, dtype=F64)
    ptr = dequeue_and_enqueue(queue, 0, t([[1.0, 1.0], [2.0, 2.0]]))
    assert ptr == 2
    ptr = dequeue_and_enqueue(queue, torch.tensor([ptr]), t([[3.0, 3.0], [4.0, 4.0]]))
    assert ptr == 0  # wrapped
    assert queue[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
    ptr = dequeue_and_enqueue(queue, ptr, t([[5.0, 5.0], [6.0, 6.0]]))  # the oldest keys are replaced
    assert ptr == 2 and queue[:, 0].tolist() == [5.0, 6.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="multiple of the number of keys"):
        dequeue_and_enqueue(queue, 0, torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError):
        dequeue_and_enqueue(queue, 0, torch.zeros(2, 3, dtype=F64))


# ---------------------------------------------------------------------------------------------- PCL


def test_pcl_concentration_hand_example():
    features = t([[1.0, 0.0], [-3.0, 0.0],  # cluster 0 at (0, 0): distances 1, 3
                  [11.0, 0.0], [9.0, 0.0], [10.0, 1.0], [10.0, -1.0],  # cluster 1 at (10, 0): distances 1, 1, 1, 1
                  [0.0, 10.5]])  # cluster 2 at (0, 10): a single point → max φ
    labels = torch.tensor([0, 0, 1, 1, 1, 1, 2])
    centroids = t([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    phi0, phi1 = 2.0 / math.log(12.0), 1.0 / math.log(14.0)
    raw = [phi0, phi1, phi0]  # sorted: phi1, phi0, phi0
    p10 = phi1 + 0.2 * (phi0 - phi1)  # numpy linear: position 0.1·(3 − 1) = 0.2
    p90 = phi0  # position 1.8 between two equal values
    clipped = [min(max(x, p10), p90) for x in raw]
    temperature = 0.3
    expected = [temperature * x / (sum(clipped) / 3) for x in clipped]
    phi = pcl_concentration(features, labels, centroids, temperature)
    assert phi.tolist() == pytest.approx(expected, rel=1e-12)
    assert phi.mean().item() == pytest.approx(temperature)
    assert phi[1].item() > temperature * phi1 / (sum(raw) / 3)  # the 10th-percentile clip raised cluster 1


def test_pcl_concentration_degenerate_clusters():
    # every cluster has one point: max φ is 0, eps keeps φ > 0 and the rescale gives T everywhere
    phi = pcl_concentration(t([[1.0], [2.0]]), torch.tensor([0, 1]), t([[0.0], [0.0]]), 0.2)
    assert phi.tolist() == pytest.approx([0.2, 0.2])


def test_proto_nce_single_negative_hand_ce():
    q = t([unit([1.0, 0.2]), unit([0.3, 1.0])])
    labels = torch.tensor([0, 1])
    centroids = t([[1.0, 0.0], [0.0, 1.0], [-0.6, 0.8]])
    phi = t([0.1, 0.2, 0.4])
    expected = 0.0
    for qi, y in zip(q.tolist(), [0, 1]):
        pos = dot(qi, centroids[y].tolist()) / phi[y].item()
        neg = dot(qi, centroids[2].tolist()) / 0.4  # cluster 2 is the only one absent from the batch
        expected += (-pos + math.log(math.exp(pos) + math.exp(neg))) / 2
    assert proto_nce(q, labels, centroids, phi, 1).item() == pytest.approx(expected, rel=1e-12)
    # r = 3 draws of the same negative (with replacement) = three copies of its logit
    expected3 = 0.0
    for qi, y in zip(q.tolist(), [0, 1]):
        pos = dot(qi, centroids[y].tolist()) / phi[y].item()
        neg = dot(qi, centroids[2].tolist()) / 0.4
        expected3 += (-pos + math.log(math.exp(pos) + 3 * math.exp(neg))) / 2
    assert proto_nce(q, labels, centroids, phi, 3).item() == pytest.approx(expected3, rel=1e-12)
    multi = proto_nce_multi(q, [labels, labels], [centroids, centroids], [phi, phi], 1)
    assert multi.item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="no negative prototype"):
        proto_nce(q, torch.tensor([0, 1]), centroids[:2], phi[:2], 1)


def test_negative_prototypes_drawn_with_replacement_from_absent():
    labels = torch.tensor([0, 2, 2, 5])
    ids = sample_negative_prototypes(labels, 7, 50, torch.Generator().manual_seed(0))
    assert len(ids) == 50 and set(ids.tolist()) <= {1, 3, 4, 6}
    assert len(set(ids.tolist())) > 1  # uniform over the four candidates, repeats allowed (50 > 4)


# ---------------------------------------------------------------------------------------------- Contrastive Clustering


def test_cc_instance_loss_is_cc_instance_nt_xent():
    z1 = [unit([1.0, 0.5, 0.0]), unit([0.0, 1.0, 0.2]), unit([0.3, -0.2, 1.0])]
    z2 = [unit([0.9, 0.6, 0.1]), unit([-0.1, 1.0, 0.0]), unit([0.2, 0.0, 1.0])]
    n = len(z1)
    positive_of = [i + n for i in range(n)] + list(range(n))
    expected = hand_nt_xent(z1 + z2, positive_of, 0.5)  # CC: CE summed over 2N, divided by 2N
    assert cc_instance_loss(t(z1), t(z2)).item() == pytest.approx(expected, rel=1e-6)
    assert cc_instance_loss(t(z1), t(z2)).item() == nt_xent(t(z1), t(z2), 0.5).item()


def test_cc_cluster_loss_k2_hand_and_symmetric():
    c1 = t([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    c2 = t([[0.7, 0.3], [0.1, 0.9], [0.5, 0.5]])
    columns = [c1[:, 0].tolist(), c1[:, 1].tolist(), c2[:, 0].tolist(), c2[:, 1].tolist()]
    expected = hand_nt_xent(columns, [2, 3, 0, 1], 1.0)
    assert cc_cluster_loss(c1, c2).item() == pytest.approx(expected, rel=1e-6)
    assert cc_cluster_loss(c2, c1).item() == pytest.approx(expected, rel=1e-6)
    assert cc_cluster_loss(c1, c2, 0.5).item() == pytest.approx(hand_nt_xent(columns, [2, 3, 0, 1], 0.5), rel=1e-6)


def test_cc_entropy_sign():
    k = 4
    uniform = torch.full((3, k), 1.0 / k, dtype=F64)
    assert cc_entropy(uniform, uniform).item() == pytest.approx(0.0, abs=1e-12)
    # balanced one-hot rows: p uniform again → 0
    balanced = torch.eye(k, dtype=F64)
    assert cc_entropy(balanced, balanced).item() == pytest.approx(0.0, abs=1e-12)
    # all samples in one cluster: p one-hot → log K per view (0·log 0 = 0, no NaN)
    collapsed = torch.zeros(3, k, dtype=F64)
    collapsed[:, 1] = 1.0
    assert cc_entropy(collapsed, uniform).item() == pytest.approx(math.log(k))
    assert cc_entropy(collapsed, collapsed).item() == pytest.approx(2 * math.log(k))
    # in between: p = (½, ½, 0, 0) → log 4 − log 2 per view
    half = t([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    assert cc_entropy(half, uniform).item() == pytest.approx(math.log(2.0))


# ---------------------------------------------------------------------------------------------- schedules


def test_ema_update_linear_hand_values():
    target, online = nn.Linear(2, 1).double(), nn.Linear(2, 1).double()
    with torch.no_grad():
        target.weight.copy_(t([[1.0, 2.0]]))
        target.bias.copy_(t([0.0]))
        online.weight.copy_(t([[3.0, -2.0]]))
        online.bias.copy_(t([1.0]))
    ema_update_(target, online, 0.75)
    assert target.weight.tolist() == [[1.5, 1.0]]  # 0.75·[1, 2] + 0.25·[3, −2]
    assert target.bias.tolist() == [0.25]
    assert online.weight.tolist() == [[3.0, -2.0]]
    ema_update_(target, online, 1.0)
    assert target.weight.tolist() == [[1.5, 1.0]]
    ema_update_(target, online, 0.0)
    assert target.weight.tolist() == [[3.0, -2.0]]
    with pytest.raises(ValueError):
        ema_update_(target, nn.Linear(3, 1), 0.5)
    with pytest.raises(ValueError):
        ema_update_(target, online, 1.5)


def test_ema_update_buffer_policies():
    def pair():
        target, online = nn.BatchNorm1d(2).double(), nn.BatchNorm1d(2).double()
        online.running_mean.fill_(4.0)
        online.num_batches_tracked.fill_(7)
        return target, online

    target, online = pair()
    ema_update_(target, online, 0.5)  # default: copy
    assert target.running_mean.tolist() == [4.0, 4.0] and int(target.num_batches_tracked) == 7
    target, online = pair()
    ema_update_(target, online, 0.5, buffers="keep")
    assert target.running_mean.tolist() == [0.0, 0.0] and int(target.num_batches_tracked) == 0
    target, online = pair()
    ema_update_(target, online, 0.5, buffers="ema")
    assert target.running_mean.tolist() == [2.0, 2.0] and int(target.num_batches_tracked) == 7


def test_momentum_schedule_endpoints():
    assert momentum_at(0, 100) == 0.996 and momentum_at(100, 100) == 0.996
    assert momentum_at(0, 100, schedule="cosine") == pytest.approx(0.996)
    assert momentum_at(100, 100, schedule="cosine") == pytest.approx(1.0)
    assert momentum_at(50, 100, schedule="cosine") == pytest.approx(0.998)
    assert momentum_at(25, 100, base=0.99, schedule="cosine") == pytest.approx(1 - 0.01 * (math.sqrt(0.5) + 1) / 2)
    assert momentum_at(250, 100, schedule="cosine") == pytest.approx(1.0)
    with pytest.raises(ValueError):
        momentum_at(0, 100, schedule="linear")


def test_lr_schedules():
    assert lr_at(25.0, 0.1, 1000, 50) == pytest.approx(0.05)  # warm-up midpoint
    assert lr_at(0.0, 0.1, 1000, 50) == 0.0
    assert lr_at(50.0, 0.1, 1000, 50) == pytest.approx(0.1)  # peak at the end of warm-up
    assert lr_at(50.0, 0.1, 1000, 50, "cosine") == pytest.approx(0.1)
    # ProPos: ½(1 + cos(950π/1000)) = sin²(π/40) ≈ 0.0061558 of the peak at the last epoch
    end = lr_at(1000.0, 1.0, 1000, 50)
    assert end == pytest.approx(math.sin(math.pi / 40) ** 2, rel=1e-12)
    assert end == pytest.approx(0.0061558, abs=1e-7)
    assert lr_at(550.0, 1.0, 1000, 50) == pytest.approx((1 + math.cos(math.pi / 2)) / 2)  # = ½ at e − w = E/2
    # standard cosine: half at the middle of the annealing span, 0 at the end
    assert lr_at(525.0, 1.0, 1000, 50, "cosine") == pytest.approx(0.5)
    assert lr_at(1000.0, 1.0, 1000, 50, "cosine") == pytest.approx(0.0, abs=1e-15)
    assert lr_at(1000.0, 1.0, 1000, 50, "cosine", min_lr_ratio=0.01) == pytest.approx(0.01)
    # ProPos's code default learning_eta_min 0.01: lr_min + (1 − lr_min)·sin²(π/40)
    assert lr_at(1000.0, 1.0, 1000, 50, min_lr_ratio=0.01) == pytest.approx(0.01 + 0.99 * math.sin(math.pi / 40) ** 2)
    # per-iteration use, no warm-up
    assert lr_at(0.0 + 3 / 6, 1.0, 10, 0, "cosine") == pytest.approx((1 + math.cos(math.pi * 0.05)) / 2)
    with pytest.raises(ValueError):
        lr_at(1.0, 1.0, 10, 0, "step")


def test_scaled_lr():
    assert scaled_lr(0.05, 512) == pytest.approx(0.1)
    assert scaled_lr(0.06, 128) == pytest.approx(0.03)
