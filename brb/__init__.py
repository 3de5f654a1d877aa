"""brb: deep clustering (DEC, IDEC, DCN) with and without "Breaking the Reclustering Barrier".

Python API (the console script ``brb`` is a thin layer over it)::

    from brb import load_config, prepare_dataset, load_prepared, pretrain_autoencoder, run_clustering

Names are imported on first use, so that ``import brb.config`` (e.g. by the workflow, to validate a
study) stays free of torch and scikit-learn.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "brb.config",
    "ConfigError": "brb.config",
    "load_config": "brb.config",
    "make_config": "brb.config",
    "DataFileError": "brb.data",
    "load_prepared": "brb.data",
    "prepare_dataset": "brb.data",
    "clustering_metrics": "brb.metrics",
    "pretrain_autoencoder": "brb.methods.reconstruction",
    "run_clustering": "brb.methods.centroid",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'brb' has no attribute {name!r}")
