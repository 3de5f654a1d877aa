"""Datasets: a registry of loaders, prepared ``.npz`` files, and device-resident tensors."""

from brb.data import builtin, coil, imagefolder, stl10, torchvision_sets, uci  # noqa: F401  (register the loaders)
from brb.data.prepared import PreparedData, load_prepared, prepare_dataset, save_prepared
from brb.data.registry import DATASETS, DataFileError, FetchOptions, RawData, register_dataset

__all__ = [
    "DATASETS",
    "DataFileError",
    "FetchOptions",
    "PreparedData",
    "RawData",
    "load_prepared",
    "prepare_dataset",
    "register_dataset",
    "save_prepared",
]
