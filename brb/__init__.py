"""brb: deep clustering (DEC, IDEC, DCN) with and without "Breaking the Reclustering Barrier".

Python API (the console script ``brb`` is a thin layer over it)::

    from brb import Config, prepare_dataset, load_prepared, pretrain_autoencoder, run_clustering
"""

__version__ = "0.1.0"

from brb.config import Config, ConfigError, load_config  # noqa: E402
from brb.data import DataFileError, load_prepared, prepare_dataset  # noqa: E402
from brb.metrics import clustering_metrics  # noqa: E402

__all__ = [
    "Config",
    "ConfigError",
    "DataFileError",
    "load_config",
    "load_prepared",
    "prepare_dataset",
    "clustering_metrics",
    "pretrain_autoencoder",
    "run_clustering",
]


def __getattr__(name):  # torch-heavy entry points are imported lazily
    if name == "pretrain_autoencoder":
        from brb.pretrain import pretrain_autoencoder

        return pretrain_autoencoder
    if name == "run_clustering":
        from brb.cluster import run_clustering

        return run_clustering
    raise AttributeError(name)
