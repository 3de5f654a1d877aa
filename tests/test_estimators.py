"""scikit-learn estimators (brb.estimators): scikit-learn's own estimator checks, and real clustering of blobs.

Exempted checks: none. ``check_array_api_input`` skips itself unless SCIPY_ARRAY_API is set (the estimators
compute with torch, not the array API), as it does for most scikit-learn estimators.
"""

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import check_estimator

from brb.estimators import DCN, DEC, ESTIMATORS, IDEC
from brb.registry import REGISTRY

TINY = {"hidden": (16, 8), "pretrain_epochs": 10, "epochs": 3, "random_state": 0, "device": "cpu"}


def test_one_estimator_per_clustering_method():
    assert list(ESTIMATORS) == list(REGISTRY.names("method", "clustering"))
    assert [cls.__name__ for cls in ESTIMATORS.values()][:3] == ["DEC", "IDEC", "DCN"]


@pytest.mark.parametrize("cls", [DEC, IDEC, DCN], ids=lambda c: c.__name__)
def test_scikit_learn_estimator_checks(cls):
    results = check_estimator(cls(3, **TINY), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:400]) for r in results if r["status"] == "failed"]
    assert not failed, failed
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert skipped <= {"check_array_api_input"}, skipped
    assert len(results) > 40


def test_fit_predict_finds_blobs_and_keeps_its_fitted_state():
    X, y = make_blobs(240, centers=3, cluster_std=1.0, random_state=0)
    est = IDEC(3, hidden=(32, 16), pretrain_epochs=15, epochs=10, batch_size=64, variant="brb", brb_interval=5,
               random_state=0, device="cpu")
    labels = est.fit_predict(X)
    assert adjusted_rand_score(y, labels) > 0.6
    assert est.cluster_centers_.shape == (3, 3) and est.transform(X).shape == (240, 3)
    assert np.array_equal(est.predict(X), labels)  # labels_ are the fitted data's nearest centroids
    assert est.config_["cluster"]["algorithm"] == "idec" and est.config_["brb"]["variant"] == "brb"
    assert est.history_["brb"].sum() == 1 and "acc" not in est.history_  # no labels, so no ACC
    again = IDEC(3, hidden=(32, 16), pretrain_epochs=15, epochs=10, batch_size=64, variant="brb", brb_interval=5,
                 random_state=0, device="cpu").fit(X)
    assert np.array_equal(again.labels_, labels)  # random_state makes it deterministic on the CPU
    with pytest.raises(ValueError, match="n_samples=2 should be >= n_clusters=3"):
        IDEC(3, **TINY).fit(X[:2])
    with pytest.raises(ValueError, match="variant"):
        IDEC(3, variant="fancy").fit(X)
