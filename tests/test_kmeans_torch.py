"""k-means in torch (``brb.cluster.kmeans_torch``) against scikit-learn, and its use through ``recluster``."""

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from brb.cluster.kmeans_torch import (
    AUTO_TORCH_MIN_POINTS,
    _update_centers,
    assign_clusters,
    choose_kmeans_backend,
    kmeans_torch,
)
from brb.interventions.brb_ops import recluster


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    x, _ = make_blobs(n_samples=3000, n_features=8, centers=6, cluster_std=1.5, random_state=0)
    return x


def _inertia_and_labels(x: np.ndarray, centers) -> tuple[float, np.ndarray]:
    labels, dist = assign_clusters(torch.from_numpy(x), torch.as_tensor(np.asarray(centers), dtype=torch.float64))
    return float(dist.sum()), labels.numpy()


def test_matches_sklearn_inertia_and_labels(blobs):
    ref = KMeans(n_clusters=6, n_init=10, random_state=0).fit(blobs)
    centers = kmeans_torch(torch.from_numpy(blobs), 6, seed=0)
    assert centers.shape == (6, 8) and centers.dtype == torch.float32 and centers.device.type == "cpu"
    inertia, labels = _inertia_and_labels(blobs, centers.numpy())
    assert abs(inertia - ref.inertia_) <= 0.01 * ref.inertia_
    assert adjusted_rand_score(ref.labels_, labels) >= 0.99


def test_same_seed_is_bit_identical_other_seed_runs(blobs):
    z = torch.from_numpy(blobs).float()
    a = kmeans_torch(z, 6, seed=3, n_init=2)
    b = kmeans_torch(z, 6, seed=3, n_init=2)
    assert torch.equal(a, b)
    c = kmeans_torch(z, 6, seed=4, n_init=2)  # may differ (e.g. cluster order); must be a valid answer
    assert c.shape == a.shape and torch.isfinite(c).all()


def test_chunked_distances_give_the_same_clustering(blobs):
    z = torch.from_numpy(blobs).float()
    whole = kmeans_torch(z, 6, seed=1, n_init=2)
    chunked = kmeans_torch(z, 6, seed=1, n_init=2, chunk_rows=97)
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-4)


def test_recluster_torch_backend_returns_float32_numpy(blobs):
    for z in (blobs, torch.from_numpy(blobs).float()):
        found = recluster(z, 6, method="kmeans", seed=0, backend="torch")
        assert isinstance(found, np.ndarray) and found.dtype == np.float32 and found.shape == (6, 8)
    ref = recluster(blobs, 6, method="kmeans", seed=0)  # default backend: sklearn, as before
    ours, theirs = _inertia_and_labels(blobs, found)[0], _inertia_and_labels(blobs, ref)[0]
    assert abs(ours - theirs) <= 0.01 * theirs


@pytest.mark.parametrize("method", ["kmeans", "kmeans++", "kmedoids", "em", "random"])
def test_recluster_accepts_torch_tensors_for_every_method(method):
    z = torch.randn(60, 3, generator=torch.Generator().manual_seed(0))
    found = recluster(z, 4, method=method, seed=1)
    assert isinstance(found, np.ndarray) and found.dtype == np.float32 and found.shape == (4, 3)


def test_too_many_clusters_and_bad_arguments_raise():
    z = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="5 clusters in 3 points"):
        kmeans_torch(z, 5, seed=0)
    with pytest.raises(ValueError, match="5 clusters in 3 points"):
        recluster(z, 5, backend="torch")
    with pytest.raises(ValueError, match="2-d"):
        kmeans_torch(torch.zeros(4), 2, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        kmeans_torch(torch.tensor([[0.0, 1.0], [float("nan"), 0.0]]), 2, seed=0)
    with pytest.raises(ValueError, match="unknown k-means backend"):
        recluster(np.zeros((4, 2)), 2, backend="faiss")


@pytest.mark.parametrize("distinct", [1, 3])
def test_fewer_distinct_points_than_clusters_gives_finite_centroids(distinct):
    base = torch.arange(distinct * 2, dtype=torch.float32).reshape(distinct, 2)
    z = base.repeat(40, 1)  # 40 copies of each distinct point
    centers = kmeans_torch(z, 5, seed=0, n_init=3)
    assert centers.shape == (5, 2) and torch.isfinite(centers).all()
    # every centroid sits on one of the distinct points, and every distinct point has a centroid on it
    d = torch.cdist(centers, base)
    assert (d.min(dim=1).values < 1e-5).all() and (d.min(dim=0).values < 1e-5).all()
    found = recluster(z.numpy(), 5, backend="torch")
    assert np.isfinite(found).all() and found.shape == (5, 2)


def test_empty_cluster_is_reseeded_on_the_farthest_point():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [50.0, 0.0], [51.0, 0.0]])
    old = torch.tensor([[0.0, 0.0], [50.0, 0.0], [-100.0, 0.0]])  # the third centroid attracts no point
    labels, dist = assign_clusters(x, old)
    assert labels.tolist() == [0, 0, 0, 1, 1]
    new = _update_centers(x, x.T.contiguous(), labels, dist, old)
    # the farthest point (10, 0) founds the empty cluster and leaves cluster 0
    torch.testing.assert_close(new, torch.tensor([[0.5, 0.0], [50.5, 0.0], [10.0, 0.0]]))


def test_kmeans_recovers_a_lone_outlier():
    g = torch.Generator().manual_seed(0)
    z = torch.cat([torch.randn(50, 2, generator=g), torch.randn(50, 2, generator=g) + 20, torch.tensor([[100.0, 0]])])
    centers = kmeans_torch(z, 3, seed=0, n_init=1)
    assert (torch.cdist(centers, torch.tensor([[100.0, 0]])).min() < 1e-4).item()


def test_choose_kmeans_backend():
    big, small = AUTO_TORCH_MIN_POINTS, AUTO_TORCH_MIN_POINTS - 1
    assert AUTO_TORCH_MIN_POINTS == 20_000
    assert choose_kmeans_backend("auto", big, "cuda") == "torch"
    assert choose_kmeans_backend("auto", big, torch.device("cuda:1")) == "torch"
    assert choose_kmeans_backend("auto", small, "cuda") == "sklearn"
    assert choose_kmeans_backend("auto", 10**6, "cpu") == "sklearn"
    assert choose_kmeans_backend("auto", 10**6, None) == "sklearn"
    assert choose_kmeans_backend("sklearn", big, "cuda") == "sklearn"
    assert choose_kmeans_backend("torch", 10, "cpu") == "torch"
    with pytest.raises(ValueError, match="unknown k-means backend"):
        choose_kmeans_backend("gpu", 10, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_input_stays_on_the_device(blobs):
    z = torch.from_numpy(blobs).float().cuda()
    centers = kmeans_torch(z, 6, seed=0)
    assert centers.device.type == "cuda" and centers.dtype == torch.float32
    ref = KMeans(n_clusters=6, n_init=10, random_state=0).fit(blobs)
    inertia, labels = _inertia_and_labels(blobs, centers.cpu().numpy())
    assert abs(inertia - ref.inertia_) <= 0.01 * ref.inertia_
    assert adjusted_rand_score(ref.labels_, labels) >= 0.99
    found = recluster(z, 6, seed=0, backend="auto")  # 3000 points: auto keeps sklearn, still accepts CUDA input
    assert isinstance(found, np.ndarray) and found.shape == (6, 8)
    found = recluster(z, 6, seed=0, backend="torch")
    assert isinstance(found, np.ndarray) and found.dtype == np.float32 and found.shape == (6, 8)
