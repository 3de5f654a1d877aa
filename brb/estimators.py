"""scikit-learn estimators for the centroid-based deep clustering methods: one class per method.

>>> from brb.estimators import IDEC
>>> est = IDEC(n_clusters=10, pretrain_epochs=50, epochs=50, variant="brb", random_state=0)
>>> labels = est.fit_predict(X)                 # X: (n_samples, n_features) array
>>> est.cluster_centers_, est.transform(X)       # centroids and samples in the embedding space

``__init__`` only stores its arguments; ``fit`` builds the configuration (validated as every run's is), pretrains
the feed-forward autoencoder (``pretrain_epochs`` > 0) and clusters with the method, BRB as ``variant`` says.
Features are z-scored per feature with the statistics of the data ``fit`` saw (``transform`` and ``predict``
reuse them). The fitted estimator holds ``labels_``, ``cluster_centers_`` (embedding space), ``model_`` (the
network), ``history_`` (one row per epoch) and ``config_`` (the applied configuration). The methods are the
registry's clustering methods (``brb/registry.py``), with the library's defaults for every option not named
here (``config`` passes any other key, e.g. ``{"cluster": {"target": "dataset"}}``).
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from brb.config import VARIANTS, deep_merge, make_config
from brb.registry import REGISTRY


class _DeepCentroidClustering(ClusterMixin, TransformerMixin, BaseEstimator):
    """Shared implementation; subclasses name their method in ``_method``."""

    _method: ClassVar[str] = ""

    _parameter_constraints: ClassVar[dict] = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "hidden": ["array-like"],
        "embedding_dim": [Interval(Integral, 1, None, closed="left"), None],
        "pretrain_epochs": [Interval(Integral, 0, None, closed="left")],
        "epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "variant": [StrOptions(set(VARIANTS))],
        "brb_interval": [Interval(Integral, 1, None, closed="left")],
        "brb_alpha": [Interval(Real, 0, 1, closed="both")],
        "random_state": ["random_state"],
        "device": [str],
        "config": [dict, None],
        "verbose": ["boolean"],
    }

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        hidden=(256, 128),
        embedding_dim: int | None = None,
        pretrain_epochs: int = 50,
        epochs: int = 50,
        batch_size: int = 256,
        lr: float = 1e-3,
        variant: str = "baseline",
        brb_interval: int = 20,
        brb_alpha: float = 0.8,
        random_state=None,
        device: str = "auto",
        config: dict | None = None,
        verbose: bool = False,
    ):
        self.n_clusters = n_clusters
        self.hidden = hidden
        self.embedding_dim = embedding_dim
        self.pretrain_epochs = pretrain_epochs
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.variant = variant
        self.brb_interval = brb_interval
        self.brb_alpha = brb_alpha
        self.random_state = random_state
        self.device = device
        self.config = config
        self.verbose = verbose

    def _settings(self, n_samples: int, seed: int) -> dict[str, Any]:
        batch = min(self.batch_size, n_samples)
        values = {
            "model": {"arch": "mlp", "hidden": [int(h) for h in self.hidden], "embedding_dim": self.embedding_dim},
            "pretrain": {"epochs": self.pretrain_epochs, "batch_size": batch},
            "cluster": {"algorithm": self._method, "n_clusters": self.n_clusters, "epochs": self.epochs,
                        "batch_size": batch, "lr": self.lr, "kmeans_n_init": 10},
            "brb": {"variant": self.variant, "interval": self.brb_interval, "alpha": self.brb_alpha},
            "run": {"seed": seed, "device": self.device, "checkpoint_every": 0},
        }
        return deep_merge(values, self.config or {})

    def fit(self, X, y=None):
        """Pretrain (``pretrain_epochs`` > 0) and cluster ``X`` (n_samples, n_features); ``y`` is ignored."""
        self._validate_params()
        X = validate_data(self, X, dtype=np.float32, ensure_min_samples=2)
        if self.n_clusters > len(X):
            raise ValueError(f"n_samples={len(X)} should be >= n_clusters={self.n_clusters}")
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        config = make_config(self._settings(len(X), seed))

        from brb.data.prepared import PreparedData
        from brb.data.tensors import DeviceData
        from brb.methods.centroid import run_clustering
        from brb.methods.reconstruction import pretrain_autoencoder

        # labels are used only to score the history; an estimator has none, so they are all 0
        data = PreparedData("array", X, np.zeros(len(X), dtype=np.int64), [str(k) for k in range(self.n_clusters)])
        stats = DeviceData(data, "cpu", config.data.normalize)
        model = pretrain_autoencoder(config, data, progress=self.verbose).model if self.pretrain_epochs else None
        result = run_clustering(config, data, model, progress=self.verbose)
        self.config_ = config.to_dict()
        self.model_ = result.model.eval()
        self.history_ = result.history.drop(columns=["acc", "nmi", "ari", "purity"], errors="ignore")
        self.labels_ = np.asarray(result.labels, dtype=np.int64)
        self.cluster_centers_ = np.asarray(result.centroids, dtype=np.float32)
        self._statistics = (stats.mean.cpu(), stats.std.cpu())
        return self

    def transform(self, X) -> np.ndarray:
        """The samples in the embedding space (n_samples, embedding size)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        from brb.data.prepared import PreparedData
        from brb.data.tensors import DeviceData
        from brb.engine.common import embed

        device = next(self.model_.parameters()).device
        data = PreparedData("array", X, np.zeros(len(X), dtype=np.int64), ["0"])
        z = embed(self.model_, DeviceData(data, device, statistics=self._statistics))
        return z.cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """The nearest centroid of each sample's embedding."""
        z = self.transform(X)
        dist = ((z[:, None, :] - self.cluster_centers_[None]) ** 2).sum(axis=2)
        return dist.argmin(axis=1).astype(np.int64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.input_tags.allow_nan = False
        return tags


def _estimator(name: str) -> type[_DeepCentroidClustering]:
    entry = REGISTRY.entry("method", name)
    doc = (f"{entry.summary}.\n\nA scikit-learn estimator of brb's ``{name}`` method (registry defaults: "
           f"{dict(entry.defaults)}); see :mod:`brb.estimators` for the parameters and fitted attributes.")
    return type(name.upper(), (_DeepCentroidClustering,), {"_method": name, "__doc__": doc, "__module__": __name__})


#: method name -> estimator class, one per clustering method of the registry (a new method gets one too)
ESTIMATORS: dict[str, type[_DeepCentroidClustering]] = {
    name: _estimator(name) for name in REGISTRY.names("method", "clustering")
}
globals().update({cls.__name__: cls for cls in ESTIMATORS.values()})
DEC, IDEC, DCN = ESTIMATORS["dec"], ESTIMATORS["idec"], ESTIMATORS["dcn"]  # named for readers and linters

__all__ = ["ESTIMATORS", *(cls.__name__ for cls in ESTIMATORS.values())]
