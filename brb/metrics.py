"""Clustering metrics: ACC (Hungarian matching), NMI, ARI, purity, cluster change, uncertainty.

All functions accept integer label vectors; the number of predicted clusters may differ from the number
of classes (extra clusters stay unmatched in ACC and count towards purity with their majority class).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def _contingency(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"label vectors must be 1-D and of equal length, got {y_true.shape} and {y_pred.shape}")
    if len(y_true) == 0:
        raise ValueError("label vectors are empty")
    _, t = np.unique(y_true, return_inverse=True)
    _, p = np.unique(y_pred, return_inverse=True)
    n_pred, n_true = p.max() + 1, t.max() + 1
    return np.bincount(p * n_true + t, minlength=n_pred * n_true).reshape(n_pred, n_true)  # rows: predicted clusters, columns: classes


def cluster_acc(y_true, y_pred) -> float:
    """Best one-to-one matching accuracy of clusters to classes (Hungarian algorithm)."""
    table = _contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def purity(y_true, y_pred) -> float:
    """Fraction of points belonging to the majority class of their cluster."""
    table = _contingency(y_true, y_pred)
    return float(table.max(axis=1).sum() / table.sum())


def cluster_change(previous, current) -> float:
    """Fraction of points whose cluster id changed (ids compared as they are, no matching)."""
    previous = np.asarray(previous)
    current = np.asarray(current)
    return float(np.mean(previous != current))


def clustering_metrics(y_true, y_pred) -> dict[str, float]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    return {
        "acc": cluster_acc(y_true, y_pred),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
        "purity": purity(y_true, y_pred),
    }


def nmi_geometric(y_true, y_pred) -> float:
    """NMI normalised by the geometric mean of the entropies (scikit-learn's default before 0.22; the
    normalisation of Aljalbout et al. and tk-uco), next to the arithmetic one of ``nmi``."""
    return float(normalized_mutual_info_score(np.asarray(y_true), np.asarray(y_pred), average_method="geometric"))


def uncertainty(distances: np.ndarray) -> np.ndarray:
    """Per-point ratio of nearest to second-nearest centroid distance (1 = on a boundary)."""
    d = np.sort(np.asarray(distances), axis=1)
    return d[:, 0] / np.maximum(d[:, 1], 1e-12)
