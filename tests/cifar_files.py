"""Tiny CIFAR-10 / CIFAR-100 files in the real format (Python pickles of uint8 rows), for tests.

Images are clusterable on purpose: each class has its own base colour, plus noise, so a few epochs of a
tiny network separate them better than chance."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

CIFAR10_BATCHES = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]


def class_images(labels: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """(N, 3072) uint8 rows (channel-major, as CIFAR stores them) of noisy class colours."""
    hues = np.linspace(0, 1, n_classes, endpoint=False)
    base = np.stack([0.5 + 0.45 * np.cos(2 * np.pi * (hues + s)) for s in (0, 1 / 3, 2 / 3)], axis=1)  # (k, 3)
    img = base[labels][:, :, None, None] * 255 + rng.normal(0, 25, (len(labels), 3, 32, 32))
    # a class-dependent stripe so that shape matters as well as colour
    for i, c in enumerate(labels):
        img[i, :, (c * 5) % 28:(c * 5) % 28 + 4, :] = 255 - img[i, :, (c * 5) % 28:(c * 5) % 28 + 4, :]
    return np.clip(img, 0, 255).astype(np.uint8).reshape(len(labels), 3072)


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10(mirror: Path, per_batch: int = 8, n_test: int = 16, n_classes: int = 10, seed: int = 0) -> Path:
    """``mirror/cifar-10-batches-py/{data_batch_1..5,test_batch}``, labels cycling over ``n_classes``."""
    rng = np.random.default_rng(seed)
    d = mirror / "cifar-10-batches-py"
    for name in CIFAR10_BATCHES:
        n = n_test if name == "test_batch" else per_batch
        labels = rng.permutation(np.arange(n) % n_classes)
        _write(d / name, {"batch_label": name, "labels": labels.tolist(), "data": class_images(labels, 10, rng),
                          "filenames": [f"{name}_{i}.png" for i in range(n)]})
    return d


def write_cifar100(mirror: Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> Path:
    """``mirror/cifar-100-python/{train,test}`` with fine and coarse (20 superclass) labels."""
    rng = np.random.default_rng(seed)
    d = mirror / "cifar-100-python"
    for name, n in (("train", n_train), ("test", n_test)):
        coarse = rng.permutation(np.arange(n) % 20)
        _write(d / name, {"filenames": [f"{i}.png" for i in range(n)], "fine_labels": (coarse * 5).tolist(),
                          "coarse_labels": coarse.tolist(), "data": class_images(coarse, 20, rng)})
    return d
