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


# --- cosine (spherical) k-means, faiss's empty-cluster split, random / given init ----------------------------


def _sphere_data(seed: int = 0):
    """300 points around 3 directions in 3-d, each point scaled by a radius spread over 0.1 ... 10."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2, 0.0], [-0.3, 1.0, 0.1], [0.1, -0.2, 1.0]]), dim=1)
    truth = torch.arange(3).repeat_interleave(100)
    points = torch.nn.functional.normalize(dirs[truth] + 0.15 * torch.randn(300, 3, generator=g), dim=1)
    radius = torch.exp(torch.empty(300).uniform_(-2.3, 2.3, generator=g))
    return points * radius.unsqueeze(1), truth, dirs


def test_spherical_kmeans_recovers_three_directions():
    z, truth, dirs = _sphere_data()
    centers = kmeans_torch(z, 3, seed=0, n_init=3, metric="cosine")
    torch.testing.assert_close(centers.norm(dim=1), torch.ones(3))  # unit centroids
    labels, dist = assign_clusters(z, centers, metric="cosine")
    assert adjusted_rand_score(truth.numpy(), labels.numpy()) == 1.0
    assert ((centers @ dirs.T).max(dim=1).values > 0.999).all()  # each centroid on one true direction
    assert ((centers @ dirs.T).argmax(dim=0).sort().values == torch.arange(3)).all()  # ... a different one each
    assert (dist >= 0).all() and (dist < 0.2).all()
    # the Euclidean metric clusters these points by their radius, not their direction
    euclid, _ = assign_clusters(z, kmeans_torch(z, 3, seed=0, n_init=3))
    assert adjusted_rand_score(truth.numpy(), euclid.numpy()) < 0.3


def test_cosine_assignments_are_scale_invariant():
    z, _, _ = _sphere_data(seed=1)
    scale = torch.exp(torch.empty(len(z)).uniform_(-4.6, 4.6, generator=torch.Generator().manual_seed(2)))
    a = kmeans_torch(z, 4, seed=5, n_init=2, metric="cosine")
    b = kmeans_torch(z * scale.unsqueeze(1), 4, seed=5, n_init=2, metric="cosine")
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    la, _ = assign_clusters(z, a, metric="cosine")
    lb, _ = assign_clusters(z * scale.unsqueeze(1), b * 7.0, metric="cosine")  # centroid scale does not matter either
    assert torch.equal(la, lb)


def test_assign_clusters_cosine_distance_by_hand():
    z = torch.tensor([[3.0, 0.0], [0.0, 0.5], [2.0, 1.0]])
    labels, dist = assign_clusters(z, torch.tensor([[5.0, 0.0], [0.0, 1.0]]), metric="cosine")
    assert labels.tolist() == [0, 1, 0]
    torch.testing.assert_close(dist, torch.tensor([0.0, 0.0, 1.0 - 2.0 / 5**0.5]), rtol=0, atol=1e-6)


def test_split_empty_cluster_by_hand():
    from brb.cluster.kmeans_torch import SPLIT_EPS, split_empty_clusters

    e = SPLIT_EPS
    centers = torch.tensor([[9.0, 9.0, 9.0], [2.0, 4.0, 6.0], [1.0, 1.0, 1.0]])
    counts = torch.tensor([0, 5, 1])  # cluster 0 is empty; cluster 2 (one point) cannot donate: the donor is 1
    new, n_split = split_empty_clusters(centers, counts, torch.Generator().manual_seed(0))
    assert n_split == 1
    torch.testing.assert_close(new[0], torch.tensor([2 * (1 + e), 4 * (1 - e), 6 * (1 + e)]))  # even coords up
    torch.testing.assert_close(new[1], torch.tensor([2 * (1 - e), 4 * (1 + e), 6 * (1 - e)]))  # ... the donor down
    torch.testing.assert_close(new[2], centers[2])
    # the perturbation is multiplicative about the data's origin: centres given relative to a mean
    origin = torch.tensor([1.0, 1.0, 1.0])
    new, _ = split_empty_clusters(centers, counts, torch.Generator().manual_seed(0), origin=origin)
    torch.testing.assert_close(new[0], torch.tensor([3 * (1 + e) - 1, 5 * (1 - e) - 1, 7 * (1 + e) - 1]))
    # two empty clusters: the second may split either half of the first donor, never the one-point cluster 3
    centers = torch.tensor([[0.0, 0.0], [4.0, 8.0], [0.0, 0.0], [-1.0, -1.0]])
    for seed in range(20):
        new, n_split = split_empty_clusters(centers, torch.tensor([0, 3, 0, 1]), torch.Generator().manual_seed(seed))
        assert n_split == 2 and torch.equal(new[3], centers[3])
        assert len({tuple(row.tolist()) for row in new[:3]}) == 3  # three distinct centroids near (4, 8)
        assert (torch.cdist(new[:3], torch.tensor([[4.0, 8.0]])) < 0.05).all()
    with pytest.raises(ValueError, match="2 points for 3 clusters"):
        split_empty_clusters(torch.zeros(3, 2), torch.tensor([0, 1, 1]), torch.Generator())


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_split_rule_fills_an_engineered_empty_cluster(metric):
    g = torch.Generator().manual_seed(0)
    z = torch.cat([torch.randn(60, 2, generator=g) * 0.5 + torch.tensor([5.0, 1.0]),
                   torch.randn(60, 2, generator=g) * 0.5 + torch.tensor([1.0, 5.0])])
    start = torch.tensor([[5.0, 1.0], [1.0, 5.0], [-100.0, -100.0]])  # the third centroid attracts no point
    labels, _ = assign_clusters(z, start, metric=metric)
    assert labels.unique().tolist() == [0, 1]
    one_step = kmeans_torch(z, 3, seed=0, n_init=1, max_iter=1, init=start, empty="split", metric=metric)
    # after one iteration the empty centroid is a perturbed copy of a donor's, next to it
    donor = torch.cdist(one_step[2:], one_step[:2]).argmin()
    assert torch.cdist(one_step[2:], one_step[donor].unsqueeze(0)).item() < 0.01 * one_step[donor].norm().item()
    centers = kmeans_torch(z, 3, seed=0, n_init=1, max_iter=50, init=start, empty="split", metric=metric)
    labels, _ = assign_clusters(z, centers, metric=metric)
    assert torch.bincount(labels, minlength=3).min().item() >= 5  # k non-empty clusters
    # the default rule (farthest point) also fills it, differently
    centers = kmeans_torch(z, 3, seed=0, n_init=1, max_iter=50, init=start, metric=metric)
    assert torch.bincount(assign_clusters(z, centers, metric=metric)[0], minlength=3).min().item() >= 1


def test_random_init_and_split_are_seeded_and_match_sklearn(blobs):
    z = torch.from_numpy(blobs).float()
    a = kmeans_torch(z, 6, seed=2, n_init=4, init="random", empty="split", tol=0.0, max_iter=100)
    assert torch.equal(a, kmeans_torch(z, 6, seed=2, n_init=4, init="random", empty="split", tol=0.0, max_iter=100))
    ref = KMeans(n_clusters=6, n_init=10, random_state=0).fit(blobs)
    inertia, labels = _inertia_and_labels(blobs, a.numpy())
    assert abs(inertia - ref.inertia_) <= 0.01 * ref.inertia_
    assert adjusted_rand_score(ref.labels_, labels) >= 0.99


def test_unknown_options_raise():
    z = torch.randn(10, 2)
    with pytest.raises(ValueError, match="unknown k-means metric"):
        kmeans_torch(z, 2, seed=0, metric="manhattan")
    with pytest.raises(ValueError, match="unknown k-means metric"):
        assign_clusters(z, z[:2], metric="dot")
    with pytest.raises(ValueError, match="unknown empty-cluster rule"):
        kmeans_torch(z, 2, seed=0, empty="drop")
    with pytest.raises(ValueError, match="unknown k-means init"):
        kmeans_torch(z, 2, seed=0, init="forgy")
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        kmeans_torch(z, 2, seed=0, init=torch.zeros(3, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_cuda_split_and_cosine_stay_on_the_device(metric):
    z, truth, _ = _sphere_data()
    start = torch.tensor([[1.0, 0.2, 0.0], [-0.3, 1.0, 0.1], [-50.0, -50.0, -50.0]])
    centers = kmeans_torch(z.cuda(), 3, seed=0, n_init=2, init=start, empty="split", metric=metric)
    assert centers.device.type == "cuda" and torch.isfinite(centers).all()
    labels, dist = assign_clusters(z.cuda(), centers, metric=metric)
    assert labels.device.type == "cuda" and torch.bincount(labels, minlength=3).min().item() >= 1
    if metric == "cosine":
        assert adjusted_rand_score(truth.numpy(), labels.cpu().numpy()) == 1.0
