import numpy as np
import pytest

from brb.metrics import cluster_acc, cluster_change, clustering_metrics, purity, uncertainty


def test_acc_is_invariant_to_label_permutation():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([2, 2, 0, 0, 1, 1])
    assert cluster_acc(y, pred) == 1.0
    m = clustering_metrics(y, pred)
    assert m["nmi"] == pytest.approx(1.0)
    assert m["ari"] == pytest.approx(1.0)
    assert m["purity"] == 1.0


def test_acc_hand_computed_with_one_error():
    y = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([1, 1, 0, 0, 0, 0])
    # best matching: cluster 1 -> class 0 (2 hits), cluster 0 -> class 1 (3 hits) = 5/6
    assert cluster_acc(y, pred) == pytest.approx(5 / 6)
    assert purity(y, pred) == pytest.approx(5 / 6)


def test_extra_clusters_are_unmatched_in_acc_but_pure():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([0, 0, 1, 1, 2, 2, 3, 3])  # 4 clusters, 2 classes
    assert cluster_acc(y, pred) == pytest.approx(0.5)
    assert purity(y, pred) == 1.0


def test_fewer_clusters_than_classes():
    y = np.array([0, 1, 2, 0, 1, 2])
    pred = np.zeros(6, dtype=int)
    assert cluster_acc(y, pred) == pytest.approx(2 / 6)
    assert purity(y, pred) == pytest.approx(2 / 6)
    assert clustering_metrics(y, pred)["ari"] == pytest.approx(0.0)


def test_noncontiguous_label_ids():
    y = np.array([3, 3, 7, 7])
    pred = np.array([10, 10, 42, 42])
    assert cluster_acc(y, pred) == 1.0


def test_cluster_change_and_uncertainty():
    assert cluster_change([0, 1, 2, 3], [0, 1, 0, 0]) == 0.5
    u = uncertainty(np.array([[1.0, 2.0, 4.0], [3.0, 3.0, 9.0]]))
    np.testing.assert_allclose(u, [0.5, 1.0])


def test_bad_input_rejected():
    with pytest.raises(ValueError, match="equal length"):
        cluster_acc([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        cluster_acc([], [])
