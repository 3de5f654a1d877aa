"""Datasets too large to hold as one tensor (the full ImageNet: 1.28 M images, 193 GB at 224 px): an *image index*
(the prepared ``x`` is a 1-D array of image file paths instead of pixels) decoded batch by batch.

:class:`FolderData` has the interface of :class:`brb.data.tensors.DeviceData` (``batch(index, transform)``,
``iter_batches``, ``y``, ``sample_shape``, ``mean`` / ``std``), so a method trains on it unchanged; what differs:

* each batch's images are read from disk, decoded with PIL and resized as :func:`brb.data.imagefolder.read_image`
  does (shorter side to ``side``, centre crop ``side`` x ``side``: torchvision's ``Resize`` + ``CenterCrop``, their
  clustering transform) in a pool of ``workers`` threads (PIL releases the GIL while decoding), then moved to the
  device as uint8; augmentation and normalisation then run on the device as for :class:`DeviceData`. The training
  views are therefore crops of the centre square (theirs: RandomResizedCrop of the whole photograph; said in the
  presets that use it);
* ``iter_batches`` (the feature passes) decodes the next batch while the current one is in use;
* ``normalize: channel`` statistics are estimated on a fixed sample of at most ``stats_sample`` images (seed 0),
  not on every image; ``none`` / ``symmetric`` as :class:`DeviceData`.

:func:`device_data` returns a :class:`FolderData` for an image index and a :class:`DeviceData` otherwise: the one
place the stages build their data.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Optional

import numpy as np
import torch

from brb.data.prepared import PreparedData
from brb.data.tensors import DeviceData, Transform, normalisation

#: decoded side when the configuration gives none (data.resize): DeepCluster's and ImageNet's 224
DEFAULT_SIDE = 224


def available_cpus() -> int:
    """CPUs this process may run on (a SLURM job's allocation, not the whole node)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def is_index(prepared: PreparedData) -> bool:
    """Whether ``prepared`` is an image index (file paths) rather than pixels or features."""
    return prepared.x.ndim == 1 and prepared.x.dtype.kind in "US"


class FolderData:
    """An image index decoded batch by batch (module notes)."""

    is_image = True
    scale = 255.0

    def __init__(self, prepared: PreparedData, device: torch.device | str = "cpu", normalize: str = "channel",
                 resize: Optional[int] = None, statistics: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                 workers: Optional[int] = None, stats_sample: int = 10000):
        if not is_index(prepared):
            raise ValueError(f"{prepared.name}: not an image index (x of shape {prepared.x.shape}, dtype {prepared.x.dtype})")
        self.name = prepared.name
        self.device = torch.device(device)
        self.files = np.asarray(prepared.x)
        self.y = np.asarray(prepared.y)
        self.n_classes = prepared.n_classes
        self.side = int(resize or DEFAULT_SIDE)
        self.workers = int(workers or min(16, available_cpus()))
        self._pool = ThreadPoolExecutor(max_workers=self.workers)
        self._ahead = ThreadPoolExecutor(max_workers=1)  # the prefetching of iter_batches
        if statistics is not None:
            self.mean, self.std = (t.to(self.device) for t in statistics)
        else:
            self.mean, self.std = self._statistics(normalize, stats_sample)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (3, self.side, self.side)

    def __len__(self) -> int:
        return len(self.files)

    def _rows(self, index: torch.Tensor | slice | np.ndarray) -> np.ndarray:
        if isinstance(index, slice):
            return np.arange(len(self))[index]
        if isinstance(index, torch.Tensor):
            return index.detach().cpu().numpy().reshape(-1)
        return np.asarray(index).reshape(-1)

    def decode(self, index: torch.Tensor | slice | np.ndarray) -> torch.Tensor:
        """The uint8 images ``(B, 3, side, side)`` of rows ``index``, on the CPU, in index order."""
        from brb.data.imagefolder import read_image

        rows = self._rows(index)
        out = np.empty((len(rows), 3, self.side, self.side), dtype=np.uint8)

        def one(j: int) -> None:
            out[j] = read_image(self.files[rows[j]], self.side)

        for _ in self._pool.map(one, range(len(rows))):  # re-raises the first unreadable file, named
            pass
        return torch.from_numpy(out)

    def _to_batch(self, raw: torch.Tensor, transform: Optional[Transform]) -> torch.Tensor:
        x = raw.to(self.device, non_blocking=True).float() / self.scale
        if transform is not None:
            x = transform(x)
        return (x - self.mean) / self.std

    def batch(self, index: torch.Tensor | slice, transform: Optional[Transform] = None) -> torch.Tensor:
        """Float, normalised batch of rows ``index`` (``transform``: augmentation on [0, 1] images first)."""
        return self._to_batch(self.decode(index), transform)

    def iter_batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        starts = list(range(0, len(self), batch_size))
        pending = self._ahead.submit(self.decode, slice(0, batch_size)) if starts else None
        for i, _ in enumerate(starts):
            raw = pending.result()
            if i + 1 < len(starts):
                nxt = starts[i + 1]
                pending = self._ahead.submit(self.decode, slice(nxt, nxt + batch_size))
            yield self._to_batch(raw, None)

    def _statistics(self, normalize: str, sample: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.arange(len(self))
        if len(rows) > sample:
            rows = np.sort(np.random.default_rng(0).choice(len(rows), size=sample, replace=False))
        chunks = (self.decode(rows[start:start + 512]).double() / self.scale for start in range(0, len(rows), 512))
        return normalisation(normalize, chunks, 3, (0, 2, 3), (1, 3, 1, 1), self.device)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._ahead.shutdown(wait=False, cancel_futures=True)

    def __del__(self) -> None:  # the thread pools of a dropped dataset
        try:
            self.close()
        except Exception:
            pass


def device_data(prepared: PreparedData, device: torch.device | str = "cpu", normalize: str = "channel",
                resize: Optional[int] = None,
                statistics: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> DeviceData | FolderData:
    """The training-side form of ``prepared``: decoded batch by batch for an image index, else on the device."""
    if is_index(prepared):
        return FolderData(prepared, device, normalize, resize, statistics)
    return DeviceData(prepared, device, normalize, resize, statistics=statistics)
