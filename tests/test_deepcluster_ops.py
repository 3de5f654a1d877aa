"""DeepCluster's pieces: PCA whitening, the uniform cluster sampler, pseudo-label helpers, the per-epoch top layer,
k-means backends (``brb.cluster.deepcluster_ops``) and the networks with their Sobel filter (``brb.models.deepcluster``)."""

import sys
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from brb.cluster.deepcluster_ops import (
    FAISS_INSTALL_HINT,
    UniformClusterSampler,
    arrange_clustering,
    fit_pca_whitening,
    images_lists_from_labels,
    kmeans,
    make_top_layer,
    nmi_consecutive,
    pca_whiten,
    reinit_top_layer_,
    uniform_cluster_indices,
)
from brb.cluster.kmeans_torch import assign_clusters
from brb.models.deepcluster import VGG16BN, AlexNetBN, SmallConvNet, SobelFilter

# --- uniform sampler ----------------------------------------------------------------------------------------------

#: cluster -> size; clusters 2 and 4 are empty, 1 and 5 are smaller than their share (about 25 of 100)
SIZES = {0: 50, 1: 3, 2: 0, 3: 30, 4: 0, 5: 1}


def _labels() -> torch.Tensor:
    labels = torch.cat([torch.full((n,), c) for c, n in SIZES.items()])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]


def _check_uniform(indices: torch.Tensor, labels: torch.Tensor, n_samples: int) -> Counter:
    assert indices.dtype == torch.long and len(indices) == n_samples
    assert int(indices.min()) >= 0 and int(indices.max()) < len(labels)
    counts = Counter(labels[indices].tolist())
    assert set(counts) <= {0, 1, 3, 5}  # never an empty cluster
    share = n_samples / 4  # four non-empty clusters
    assert all(abs(counts[c] - share) <= 1 for c in (0, 1, 3, 5)), counts
    return counts


def test_uniform_sampler_with_empty_and_small_clusters():
    labels = _labels()
    sampler = UniformClusterSampler(labels, 103, generator=torch.Generator().manual_seed(1))
    assert len(sampler) == 103 and sampler.n_nonempty == 4
    drawn = list(sampler)
    assert len(drawn) == 103 and all(isinstance(i, int) for i in drawn)
    indices = torch.tensor(drawn)
    counts = _check_uniform(indices, labels, 103)
    assert sorted(counts.values()) == [25, 26, 26, 26]  # 103 = 4 × 25 + 3
    # a cluster with at least its share gives distinct samples; a smaller one repeats all of its members
    for c in (0, 3):
        picked = indices[labels[indices] == c]
        assert len(picked.unique()) == len(picked)
    members_1 = set(torch.nonzero(labels == 1).flatten().tolist())
    assert set(indices[labels[indices] == 1].tolist()) == members_1
    assert indices[labels[indices] == 5].unique().numel() == 1
    # shuffled, not grouped by cluster
    assert len(set(labels[indices[:12]].tolist())) > 1


def test_uniform_sampler_from_images_lists_and_determinism():
    labels = _labels()
    lists = images_lists_from_labels(labels, k=6)
    assert [len(x) for x in lists] == [50, 3, 0, 30, 0, 1]
    for n_samples in (100, 7, 2, 1000):
        a = UniformClusterSampler.from_images_lists(lists, n_samples, torch.Generator().manual_seed(3))
        b = UniformClusterSampler(labels, n_samples, torch.Generator().manual_seed(3))
        assert torch.equal(a.indexes, b.indexes)  # both inputs describe the same clusters
        _check_uniform(a.indexes, labels, n_samples)
    other = uniform_cluster_indices(labels, 100, torch.Generator().manual_seed(4))
    assert not torch.equal(other, uniform_cluster_indices(labels, 100, torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="every cluster is empty"):
        UniformClusterSampler.from_images_lists([[], []], 10)


# --- PCA whitening ------------------------------------------------------------------------------------------------


def test_pca_whitening_by_hand():
    # four points with covariance diag(8, 2) around (10, -3): the whitened coordinates are ±sqrt(2)
    x = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 2.0], [0.0, -2.0]]) + torch.tensor([10.0, -3.0])
    pca = fit_pca_whitening(x, dim=2, eps=0.0)
    torch.testing.assert_close(pca.mean, torch.tensor([10.0, -3.0]))
    torch.testing.assert_close(pca.variances, torch.tensor([8.0, 2.0], dtype=torch.float64))
    r = 2**0.5
    expected = torch.tensor([[r, 0.0], [-r, 0.0], [0.0, r], [0.0, -r]])
    torch.testing.assert_close(pca_whiten(x, dim=2, eps=0.0, normalize=False), expected)
    torch.testing.assert_close(pca_whiten(x, dim=2, eps=0.0), expected / r)  # rows of unit norm
    # one component: the direction of variance 8
    torch.testing.assert_close(pca_whiten(x, dim=1, eps=0.0, normalize=False), expected[:, :1])


def test_pca_whitening_of_an_anisotropic_gaussian():
    g = torch.Generator().manual_seed(0)
    d, n = 12, 5000
    stds = torch.tensor([6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    x = (torch.randn(n, d, generator=g) * stds) @ rotation.T + 5.0
    raw_var = ((x - x.mean(0)) @ rotation[:, :6]).var(0, unbiased=False)
    assert raw_var.max() / raw_var.min() > 30  # very anisotropic before
    pca = fit_pca_whitening(x, dim=6)
    white = pca.whiten(x)
    assert white.shape == (n, 6) and white.dtype == torch.float32
    torch.testing.assert_close(white.mean(0), torch.zeros(6), rtol=0, atol=1e-4)
    cov = white.T @ white / n
    torch.testing.assert_close(cov, torch.eye(6), rtol=0, atol=2e-4)  # unit variance, uncorrelated
    torch.testing.assert_close(pca.variances.float(), stds[:6] ** 2, rtol=0.1, atol=0)
    # the principal subspace is the one of the six largest standard deviations
    directions = torch.linalg.qr(pca.projection)[0]
    assert torch.linalg.svdvals(rotation[:, :6].T @ directions).min() > 0.99
    # after the L2 normalisation every row has unit norm; the same directions as the whitened rows
    out = pca_whiten(x, dim=6)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(n), rtol=0, atol=1e-5)
    torch.testing.assert_close(out, white / white.norm(dim=1, keepdim=True), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="between 1 and the feature dimension 12"):
        fit_pca_whitening(x, dim=13)


# --- the per-epoch top layer --------------------------------------------------------------------------------------


def test_top_layer_reinitialisation():
    layer = nn.Linear(4096, 1000)
    nn.init.ones_(layer.bias)
    reinit_top_layer_(layer)
    first = layer.weight.detach().clone()
    assert abs(first.std().item() - 0.01) < 1e-4 and abs(first.mean().item()) < 1e-4
    assert torch.equal(layer.bias, torch.zeros(1000))
    reinit_top_layer_(layer)  # a new draw every call
    assert not torch.equal(layer.weight, first)
    assert abs(layer.weight.std().item() - 0.01) < 1e-4
    a = make_top_layer(256, 50, generator=torch.Generator().manual_seed(7))
    b = make_top_layer(256, 50, generator=torch.Generator().manual_seed(7))
    assert a.weight.shape == (50, 256) and torch.equal(a.weight, b.weight) and not a.bias.any()
    # through a network: a fresh layer object with k outputs; removed with None
    net = SmallConvNet((1, 32, 32), num_classes=10)
    old = net.top_layer
    new = net.reset_top_layer(100)
    assert new is net.top_layer and new is not old and net.num_classes == 100 and new.weight.shape == (100, 256)
    assert abs(new.weight.std().item() - 0.01) < 5e-4 and not new.bias.any()
    assert net.reset_top_layer(None) is None and net.num_classes is None


# --- pseudo-labels and NMI ----------------------------------------------------------------------------------------


def test_arrange_clustering_and_images_lists():
    lists = [[2, 0], [], [1, 3, 4]]
    labels = arrange_clustering(lists)
    assert labels.tolist() == [0, 2, 0, 2, 2]
    assert images_lists_from_labels(labels, k=3) == [[0, 2], [], [1, 3, 4]]
    assert images_lists_from_labels(np.array([1, 1, 0])) == [[2], [0, 1]]
    with pytest.raises(ValueError, match="exactly once"):
        arrange_clustering([[0, 1], [1]])
    with pytest.raises(ValueError, match="exactly once"):
        arrange_clustering([[0, 3], [1]])


def test_nmi_consecutive():
    prev = [[0, 1, 2], [3, 4, 5]]
    assert nmi_consecutive(prev, torch.tensor([7, 7, 7, 1, 1, 1])) == pytest.approx(1.0)  # relabelled: identical
    assert nmi_consecutive([0, 0, 1, 1], np.array([0, 1, 0, 1])) == pytest.approx(0.0, abs=1e-12)
    # a hand value: H(a) = ln 2, H(b) = 1.5 ln 2, I = ln 2 → arithmetic 0.8, geometric 1/sqrt(1.5)
    a, b = [0, 0, 1, 1], [0, 1, 2, 2]
    assert nmi_consecutive(a, b) == pytest.approx(0.8)
    assert nmi_consecutive(a, b, average_method="geometric") == pytest.approx(1 / 1.5**0.5)


# --- k-means backends ---------------------------------------------------------------------------------------------


def test_kmeans_torch_backend_with_deepcluster_settings():
    x, y = make_blobs(n_samples=600, n_features=5, centers=4, cluster_std=0.5, random_state=0)
    z = torch.from_numpy(x).float()
    result = kmeans(z, 4, seed=3, n_init=2)
    assert result.labels.shape == (600,) and result.labels.dtype == torch.long and result.centroids.shape == (4, 5)
    assert adjusted_rand_score(y, result.labels.numpy()) == 1.0
    assert result.inertia == pytest.approx(float(assign_clusters(z, result.centroids)[1].sum()), rel=1e-5)
    again = kmeans(z, 4, seed=3, n_init=2)
    assert torch.equal(result.labels, again.labels) and torch.equal(result.centroids, again.centroids)
    cos = kmeans(z, 4, seed=3, metric="cosine")
    torch.testing.assert_close(cos.centroids.norm(dim=1), torch.ones(4))
    with pytest.raises(ValueError, match="unknown k-means backend"):
        kmeans(z, 4, seed=0, backend="gpu")
    with pytest.raises(ValueError, match="init='random'"):
        kmeans(z, 4, seed=0, backend="faiss", init="k-means++")


def test_faiss_backend_missing_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    z = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ImportError, match=FAISS_INSTALL_HINT):
        kmeans(z, 3, seed=0, backend="faiss")
    assert "pip install" in FAISS_INSTALL_HINT
    auto = kmeans(z, 3, seed=0, backend="auto")  # falls back to torch
    torch.testing.assert_close(auto.centroids, kmeans(z, 3, seed=0).centroids)


def test_faiss_backend_matches_torch_when_installed():
    pytest.importorskip("faiss")
    x, _ = make_blobs(n_samples=2000, n_features=8, centers=6, cluster_std=1.0, random_state=1)
    z = torch.from_numpy(x).float()
    # random-point starts fall into local minima in both (faiss's seed 0 with 10 restarts too): the best of a few
    # seeds of each reaches the same optimum
    ours = min((kmeans(z, 6, seed=s, n_init=10) for s in range(3)), key=lambda r: r.inertia)
    theirs = min((kmeans(z, 6, seed=s, n_init=10, backend="faiss") for s in range(3)), key=lambda r: r.inertia)
    assert theirs.inertia == pytest.approx(ours.inertia, rel=0.01)
    assert adjusted_rand_score(ours.labels.numpy(), theirs.labels.numpy()) > 0.99


# --- Sobel --------------------------------------------------------------------------------------------------------


def _edge_image() -> torch.Tensor:
    """1×3×6×6: columns 0-2 RGB (0.0, 0.3, 0.6) (grey 0.3), columns 3-5 RGB (1.2, 0.9, 0.6) (grey 0.9)."""
    img = torch.empty(1, 3, 6, 6)
    img[0, :, :, :3] = torch.tensor([0.0, 0.3, 0.6]).view(3, 1, 1)
    img[0, :, :, 3:] = torch.tensor([1.2, 0.9, 0.6]).view(3, 1, 1)
    return img


def test_sobel_filter_on_a_vertical_edge():
    sobel = SobelFilter()
    img = _edge_image()
    grey = sobel.grey(img)
    expected_grey = torch.tensor([0.3] * 3 + [0.9] * 3).expand(1, 1, 6, 6)
    torch.testing.assert_close(grey, expected_grey, rtol=0, atol=1e-6)  # the channel mean, not luminance weights
    out = sobel(img)
    assert out.shape == (1, 2, 6, 6)
    inner = out[0, :, 1:5]  # rows away from the zero padding
    # horizontal gradient: 4 × (left - right) = 4 × (0.3 - 0.9) on both columns at the edge, 0 on flat columns
    torch.testing.assert_close(inner[0, :, 2:4], torch.full((4, 2), -2.4), rtol=0, atol=1e-5)
    torch.testing.assert_close(inner[0, :, 1], torch.zeros(4), rtol=0, atol=1e-6)
    torch.testing.assert_close(inner[0, :, 4], torch.zeros(4), rtol=0, atol=1e-6)
    torch.testing.assert_close(inner[1], torch.zeros(4, 6), rtol=0, atol=1e-6)  # no vertical gradient
    # the transposed image gives the transposed response in the other channel
    turned = sobel(img.transpose(2, 3))
    torch.testing.assert_close(turned[0, 1, 2:4, 1:5], torch.full((2, 4), -2.4), rtol=0, atol=1e-5)
    # a flat image gives zero inside; the filter has nothing to train
    flat = sobel(torch.full((1, 3, 5, 5), 0.7))
    torch.testing.assert_close(flat[:, :, 1:4, 1:4], torch.zeros(1, 2, 3, 3), rtol=0, atol=1e-6)
    assert list(sobel.parameters()) == [] and list(sobel.state_dict()) == []
    torch.testing.assert_close(SobelFilter(1).grey(grey), grey)  # one channel: grey is the identity


# --- networks -----------------------------------------------------------------------------------------------------


def _first_conv(net) -> nn.Conv2d:
    return next(m for m in net.body if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("sobel", [True, False])
def test_alexnet_224_shapes(sobel):
    net = AlexNetBN(224, sobel=sobel, num_classes=1000).eval()
    assert _first_conv(net).in_channels == (2 if sobel else 3) and net.first_stride == 4
    assert net.classifier[1].in_features == 256 * 6 * 6
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        feats, logits = net.features(x), net(x)
    assert feats.shape == (1, 4096) and logits.shape == (1, 1000)
    assert (feats < 0).any()  # pre-ReLU features
    if sobel:
        assert not any("sobel" in name for name, _ in net.named_parameters())


@pytest.mark.parametrize("sobel", [True, False])
@pytest.mark.parametrize("cls, width", [(AlexNetBN, 4096), (VGG16BN, 4096), (SmallConvNet, 256)])
def test_networks_on_32x32(cls, width, sobel):
    net = cls((3, 32, 32), sobel=sobel, num_classes=10)
    assert _first_conv(net).in_channels == (2 if sobel else 3)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(x)  # training mode: BatchNorm on the batch, dropout on
    assert out.shape == (2, 10) and net.embedding_dim == width
    net.eval()
    with torch.no_grad():
        feats = net.features(x)
        inter = net.intermediate(x)
        assert feats.shape == (2, width)
        torch.testing.assert_close(inter[-1][1], feats)
        if cls is SmallConvNet:
            torch.testing.assert_close(net.features(x, relu=True), feats.clamp_min(0))
        net.reset_top_layer(None)
        torch.testing.assert_close(net(x), feats)  # no top layer: forward gives the features
    names = [name for name, _ in net.named_reset_blocks()]
    n_conv = {AlexNetBN: 5, VGG16BN: 13, SmallConvNet: 5}[cls]
    assert names == [f"conv{i}" for i in range(n_conv)] + ["fc0"]
    assert [name for name, _ in inter] == names + ["fc1"]
    blocks = net.named_reset_blocks(include_embedding=True)
    assert blocks[-1][0] == "fc1" and blocks[-1][1][0] is net.classifier[-1]
    assert all(isinstance(b[0], nn.Conv2d) and isinstance(b[1], nn.BatchNorm2d) for _, b in blocks[:n_conv])
    if cls is not VGG16BN:  # the constructor arguments rebuild the same network (AlexNet: with its first stride)
        rebuilt = cls(**net.arch_kwargs())
        rebuilt.load_state_dict(net.state_dict())


def test_small_inputs_and_channels():
    assert AlexNetBN((3, 32, 32), sobel=False).first_stride == 1
    assert AlexNetBN((3, 64, 64), sobel=False).classifier[1].in_features == 256  # stride 4 fits: 256×1×1
    with pytest.raises(ValueError, match="too small for AlexNetBN"):
        AlexNetBN((3, 16, 16))
    with pytest.raises(ValueError, match="too small for VGG16BN"):
        VGG16BN((3, 28, 28))
    grey_digits = SmallConvNet((1, 28, 28), sobel=True)
    assert grey_digits.sobel_filter.in_channels == 1 and _first_conv(grey_digits).in_channels == 2
    assert grey_digits.classifier[1].in_features == 64 * 4 * 4
    assert grey_digits.features(torch.randn(3, 784)).shape == (3, 256)  # flat inputs are reshaped


def test_deepcluster_initialisation():
    net = AlexNetBN((3, 64, 64), sobel=True, num_classes=20)
    convs = [m for m in net.body if isinstance(m, nn.Conv2d)]
    conv = convs[2]  # 384 @ 3×3 from 256 channels: 884,736 weights
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 384)) ** 0.5, rel=0.01)
    assert convs[0].weight.std().item() == pytest.approx((2 / (121 * 96)) ** 0.5, rel=0.02)
    assert all(not c.bias.any() for c in convs)
    bns = [m for m in net.body if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(b.weight, torch.ones_like(b.weight)) and not b.bias.any() for b in bns)
    for lin in [m for m in net.classifier if isinstance(m, nn.Linear)] + [net.top_layer]:
        assert lin.weight.std().item() == pytest.approx(0.01, rel=0.02) and not lin.bias.any()


def test_one_deepcluster_epoch_on_random_images():
    """The pieces fit together: features → PCA-whitening → k-means → uniform sampler → new top layer → a step."""
    torch.manual_seed(0)
    images = torch.rand(64, 1, 28, 28)
    net = SmallConvNet((1, 28, 28), sobel=True).eval()
    with torch.no_grad():
        feats = net.features(images)
    x = pca_whiten(feats, dim=16)
    result = kmeans(x, 8, seed=0)
    assert torch.bincount(result.labels, minlength=8).min() >= 1
    sampler = UniformClusterSampler(result.labels, 64, torch.Generator().manual_seed(0))
    batch = torch.tensor(list(sampler)[:32])
    net.train()
    top = net.reset_top_layer(8)
    body_opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad and all(p is not q for q in top.parameters())],
                               lr=0.05, momentum=0.9, weight_decay=1e-5)
    top_opt = torch.optim.SGD(top.parameters(), lr=0.05, weight_decay=1e-5)
    loss = nn.functional.cross_entropy(net(images[batch]), result.labels[batch])
    loss.backward()
    body_opt.step()
    top_opt.step()
    assert torch.isfinite(loss)
