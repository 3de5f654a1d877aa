"""Prepared datasets on disk: one ``.npz`` per dataset, written once by ``brb prepare``.

Arrays: ``x`` (uint8 images ``(N, C, H, W)``, float32 features ``(N, D)``, or for datasets too large for one file an
*image index*: ``(N,)`` image file paths, decoded batch by batch by :class:`brb.data.stream.FolderData`), ``y`` (int64 labels),
``class_names`` (str) and ``name`` (the registry name); ``split`` (uint8, 0 train / 1 test) where the
dataset has an official train/test split.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brb.data.registry import TEST, TRAIN, DataFileError, FetchOptions, RawData, get_dataset
from brb.io import atomic_path

REQUIRED = ("x", "y", "class_names", "name")


@dataclass
class PreparedData:
    name: str
    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    split: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_image(self) -> bool:
        return self.x.ndim == 4

    def __len__(self) -> int:
        return len(self.y)

    def part(self, which: str) -> "PreparedData":
        """The ``train`` or ``test`` samples of the dataset's official split (``all``: everything)."""
        if which == "all":
            return self
        if self.split is None:
            raise DataFileError(
                f"dataset {self.name!r} has no train/test split (data.split: train_test needs one; use "
                "data.split: combined, or re-run `brb prepare` if the file predates split support)"
            )
        mask = self.split == {"train": TRAIN, "test": TEST}[which]
        if not mask.any():
            raise DataFileError(f"dataset {self.name!r} has no {which} samples")
        return PreparedData(self.name, self.x[mask], self.y[mask], self.class_names, self.split[mask])


def subset_of(data: PreparedData, n: int, seed: int = 0) -> PreparedData:
    """``n`` samples of ``data`` drawn without replacement (fixed ``seed``: every run gets the same rows), in their
    stored order; all of them when ``n`` ≥ their number."""
    if n >= len(data):
        return data
    index = np.sort(np.random.default_rng(seed).choice(len(data), size=n, replace=False))
    split = data.split[index] if data.split is not None else None
    return PreparedData(data.name, data.x[index], data.y[index], data.class_names, split)


def save_prepared(path: str | Path, name: str, raw: RawData) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        arrays = {"x": raw.x, "y": raw.y, "class_names": np.asarray(raw.class_names, dtype=str), "name": np.asarray(name)}
        if raw.split is not None:
            arrays["split"] = raw.split
        np.savez(tmp, **arrays)
    return path


def prepare_dataset(name: str, out: str | Path, mirrors=None, cache_dir=None, download: bool = True) -> Path:
    """Fetch (mirror first, then download if allowed), preprocess and save dataset ``name`` to ``out``."""
    spec = get_dataset(name)
    raw = spec.load(FetchOptions.create(mirrors=mirrors, cache_dir=cache_dir, download=download))
    return save_prepared(out, name, raw)


def load_prepared(path: str | Path) -> PreparedData:
    """Load a prepared ``.npz``; a missing, truncated or foreign file raises :class:`DataFileError`."""
    path = Path(path)
    expected = "a .npz written by `brb prepare` with arrays " + ", ".join(REQUIRED)
    if not path.is_file():
        raise DataFileError(f"data file not found: {path} (expected {expected})")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in REQUIRED if key not in npz.files]
            if missing:
                raise DataFileError(f"data file {path} lacks {', '.join(missing)} (expected {expected})")
            data = PreparedData(
                name=str(npz["name"]),
                x=npz["x"],
                y=npz["y"].astype(np.int64),
                class_names=[str(c) for c in npz["class_names"]],
                split=npz["split"].astype(np.uint8) if "split" in npz.files else None,
            )
    except DataFileError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as err:
        raise DataFileError(f"data file {path} is corrupt or truncated ({err}); expected {expected}") from None
    index = data.x.ndim == 1 and data.x.dtype.kind in "US"  # an image index (file paths)
    if (data.x.ndim not in (2, 4) and not index) or len(data.x) != len(data.y) or len(data.y) == 0:
        raise DataFileError(
            f"data file {path} has x of shape {data.x.shape} and y of shape {data.y.shape}; "
            "expected x (N, C, H, W), (N, D) or (N,) image paths and y (N,) with N > 0"
        )
    if data.split is not None and (data.split.shape != data.y.shape or not np.isin(data.split, (TRAIN, TEST)).all()):
        raise DataFileError(f"data file {path} has a split array that is not 0 (train) / 1 (test) per sample")
    if data.y.min() < 0 or data.y.max() >= data.n_classes:
        raise DataFileError(f"data file {path} has labels outside 0..{data.n_classes - 1}")
    return data
