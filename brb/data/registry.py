"""Dataset registry: adding a dataset is one decorated loader function.

A loader receives :class:`FetchOptions` (offline mirror directories searched first, a download cache,
whether downloading is allowed) and returns :class:`RawData`: images as ``uint8`` arrays of shape
``(N, C, H, W)`` (or float features ``(N, D)``), integer labels and class names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from brb.registry import REGISTRY

#: Searched for offline copies before any download (Debian's dataset packages install here).
DEFAULT_MIRRORS = ("/usr/share/datasets",)
MIRROR_ENV = "BRB_DATA_MIRRORS"


class DataFileError(RuntimeError):
    """A data file is missing, truncated or not in the expected format; the message names the file."""


#: Values of the per-sample ``split`` array.
TRAIN, TEST = 0, 1


@dataclass
class RawData:
    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    #: per sample: TRAIN (0) or TEST (1) of the dataset's official split; None when it has none
    split: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.int64)
        if len(self.x) != len(self.y):
            raise DataFileError(f"{len(self.x)} samples but {len(self.y)} labels")
        if self.split is not None:
            self.split = np.asarray(self.split, dtype=np.uint8)
            if self.split.shape != self.y.shape or not np.isin(self.split, (TRAIN, TEST)).all():
                raise DataFileError(f"split must hold {TRAIN} (train) or {TEST} (test) per sample")

    @classmethod
    def from_splits(cls, train: list, test: list, class_names: list[str], channel_axis: bool = False) -> "RawData":
        """Train parts then test parts (each an ``(x, y)`` pair) concatenated, with their ``split`` marks;
        ``channel_axis`` adds the channel axis of grey ``(N, H, W)`` images."""
        xs = [x for x, _ in train + test]
        ys = [y for _, y in train + test]
        split = np.concatenate([np.full(len(y), TRAIN) for _, y in train] + [np.full(len(y), TEST) for _, y in test])
        x = np.concatenate(xs)
        return cls(x=x[:, None] if channel_axis else x, y=np.concatenate(ys), class_names=class_names, split=split)


@dataclass
class FetchOptions:
    mirrors: list[Path] = field(default_factory=list)
    cache_dir: Path = Path("data")
    download: bool = True

    @classmethod
    def create(cls, mirrors=None, cache_dir=None, download: bool = True) -> "FetchOptions":
        dirs = [Path(m) for m in (mirrors or [])]
        env = os.environ.get(MIRROR_ENV, "")
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
        dirs += [Path(p) for p in DEFAULT_MIRRORS]
        return cls(mirrors=dirs, cache_dir=Path(cache_dir or "data"), download=download)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    load: Callable[[FetchOptions], RawData]
    description: str
    kind: str = "image"  # image | features


class _DatasetTable(Mapping):
    """name -> :class:`DatasetSpec`, a read-only view of the ``dataset`` entries of :data:`brb.registry.REGISTRY`."""

    def __getitem__(self, name: str) -> DatasetSpec:
        return REGISTRY.load("dataset", name)

    def __iter__(self):
        return iter(REGISTRY.names("dataset"))

    def __len__(self) -> int:
        return len(REGISTRY.names("dataset"))


DATASETS: Mapping[str, DatasetSpec] = _DatasetTable()


def register_dataset(name: str, description: str, kind: str = "image", rank: float | None = None):
    """Register a loader under ``name`` in the project registry (``rank``: its place in tables and plots;
    unranked datasets follow the ranked ones in registration order)."""

    def decorator(fn: Callable[[FetchOptions], RawData]):
        spec = DatasetSpec(name=name, load=fn, description=description, kind=kind)
        REGISTRY.add("dataset", name, summary=description, tags={kind}, obj=spec,
                     rank=rank if rank is not None else 100 + len(REGISTRY.names("dataset")))
        return fn

    return decorator


def get_dataset(name: str) -> DatasetSpec:
    return REGISTRY.load("dataset", name)
