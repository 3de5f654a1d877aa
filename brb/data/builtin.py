"""Datasets that need no download: scikit-learn's bundled optical digits."""

from __future__ import annotations

import numpy as np

from brb.data.registry import FetchOptions, RawData, register_dataset


def optdigits_to_uint8(values: np.ndarray) -> np.ndarray:
    """UCI optical-digits pixel counts (0..16) scaled to uint8 grey levels (0..255)."""
    return np.rint(np.asarray(values) * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)


@register_dataset(
    "digits",
    "scikit-learn's bundled UCI optical digits test set: 1,797 grey 8x8 images, 10 classes (offline); "
    "not the full OPTDIGITS (5,620 images)",
    rank=6,
)
def load_digits(options: FetchOptions) -> RawData:
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = optdigits_to_uint8(bunch.images)[:, None]
    return RawData(x=images, y=bunch.target, class_names=[str(i) for i in range(10)])
