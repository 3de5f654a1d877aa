"""Whole datasets held as one tensor on the training device; batches are drawn by index.

Images stay ``uint8`` on the device (a quarter of the memory of float32) and are converted, augmented
and normalised per batch; feature datasets are stored as float32.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F

from brb.data.prepared import PreparedData

Transform = Callable[[torch.Tensor], torch.Tensor]


def normalisation(normalize: str, chunks: Iterable[torch.Tensor], n_feat: int, dims: tuple[int, ...],
                  shape: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of ``normalize`` over ``chunks`` (float64 in [0, 1], reduced over ``dims``), shaped ``shape``:
    ``channel`` per feature / channel, ``global`` one for all, ``none`` 0 / 1 ([0, 1] inputs), ``symmetric``
    0.5 / 0.5 (tk-uco's Normalize(0.5, 0.5): [-1, 1]); ``chunks`` is only read for the first two."""
    if normalize in ("none", "symmetric"):
        value = 0.0 if normalize == "none" else 0.5
        return torch.zeros(shape, device=device) + value, torch.ones(shape, device=device) - value
    total = torch.zeros(n_feat, dtype=torch.float64, device=device)
    total_sq = torch.zeros_like(total)
    count = 0
    for c in chunks:
        c = c.to(device)
        total += c.sum(dim=dims)
        total_sq += (c * c).sum(dim=dims)
        count += c.numel() // n_feat
    if normalize == "global":
        total, total_sq, count = total.sum().expand(n_feat), total_sq.sum().expand(n_feat), count * n_feat
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-6)
    return mean.float().reshape(shape), std.float().reshape(shape)


class DeviceData:
    """A prepared dataset on ``device`` with its normalisation statistics."""

    def __init__(
        self,
        prepared: PreparedData,
        device: torch.device | str = "cpu",
        normalize: str = "channel",
        resize: Optional[int] = None,
        stats_chunk: int = 8192,
        statistics: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
    ):
        """``statistics``: (mean, std) to normalise with instead of this data's own (e.g. the training
        split's, for held-out test data)."""
        self.name = prepared.name
        self.device = torch.device(device)
        self.y = np.asarray(prepared.y)
        self.n_classes = prepared.n_classes
        x = torch.from_numpy(np.ascontiguousarray(prepared.x))
        self.is_image = x.ndim == 4
        if self.is_image and resize and tuple(x.shape[-2:]) != (resize, resize):
            x = torch.cat(
                [
                    F.interpolate(c.float(), size=(resize, resize), mode="bilinear", align_corners=False)
                    .round()
                    .clamp(0, 255)
                    .to(torch.uint8)
                    for c in x.split(stats_chunk)
                ]
            )
        self.scale = 255.0 if x.dtype == torch.uint8 else 1.0
        if not self.is_image and x.dtype != torch.uint8:
            x = x.float()
        self.x = x.to(self.device)
        if statistics is not None:
            self.mean, self.std = (t.to(self.device) for t in statistics)
        else:
            self.mean, self.std = self._statistics(normalize, stats_chunk)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.x)

    def _statistics(self, normalize: str, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
        dims = (0, 2, 3) if self.is_image else (0,)
        n_feat = self.x.shape[1]
        shape = (1, n_feat, 1, 1) if self.is_image else (1, n_feat)
        chunks = (c.double() / self.scale for c in self.x.split(chunk))
        return normalisation(normalize, chunks, n_feat, dims, shape, self.device)

    def batch(self, index: torch.Tensor | slice, transform: Optional[Transform] = None) -> torch.Tensor:
        """Float, normalised batch; ``transform`` (augmentation) acts on [0, 1] images before normalising."""
        x = self.x[index].float()
        if self.scale != 1.0:
            x = x / self.scale
        if transform is not None:
            x = transform(x)
        return (x - self.mean) / self.std

    def iter_batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        for start in range(0, len(self), batch_size):
            yield self.batch(slice(start, start + batch_size))
