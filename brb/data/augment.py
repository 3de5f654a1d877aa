"""Batched augmentation on the training device (no per-sample Python).

:class:`RandomAffine` draws one rotation, shear and translation per image and warps the whole batch
with one sampling grid, like torchvision's ``RandomAffine(degrees, translate, shear)`` applied per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class RandomAffine:
    """``interpolation`` ``bilinear`` or ``nearest`` (torchvision's default); ``pixel_translate`` rounds each
    translation to whole pixels, ``round(U(±translate·side))``, as torchvision draws it."""

    def __init__(self, degrees: float = 16.0, translate: float = 0.1, shear: float = 8.0, generator=None,
                 interpolation: str = "bilinear", pixel_translate: bool = False):
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"unknown interpolation {interpolation!r}; use bilinear or nearest")
        self.degrees = float(degrees)
        self.translate = float(translate)
        self.shear = float(shear)
        self.generator = generator
        self.interpolation = interpolation
        self.pixel_translate = bool(pixel_translate)

    def _uniform(self, n: int, bound: float, device) -> torch.Tensor:
        u = torch.rand(n, generator=self.generator, device=device)
        return (2 * u - 1) * bound

    def matrices(self, n: int, device, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Inverse affine matrices (output → input, normalised coordinates), shape (n, 2, 3); ``size``
        (height, width) is needed for whole-pixel translations."""
        angle = self._uniform(n, math.radians(self.degrees), device)
        shear = self._uniform(n, math.radians(self.shear), device)
        if self.pixel_translate:
            if size is None:
                raise ValueError("whole-pixel translations need the image size")
            height, width = size  # whole pixels, then normalised coordinates (a side spans 2)
            tx = torch.round(self._uniform(n, self.translate * width, device)) * (2.0 / width)
            ty = torch.round(self._uniform(n, self.translate * height, device)) * (2.0 / height)
        else:
            tx = self._uniform(n, 2 * self.translate, device)  # normalised coordinates span 2
            ty = self._uniform(n, 2 * self.translate, device)
        cos, sin = torch.cos(angle), torch.sin(angle)
        tan = torch.tan(shear)
        # forward map A = R(angle) @ Shear_x(shear) = [[cos, cos·tan − sin], [sin, sin·tan + cos]], det A = 1,
        # so its inverse is the adjugate (closed form: no solver, no device synchronisation)
        a_inv = torch.stack(
            [torch.stack([sin * tan + cos, sin - cos * tan], -1), torch.stack([-sin, cos], -1)], -2
        )
        t = torch.stack([tx, ty], -1).unsqueeze(-1)
        return torch.cat([a_inv, -a_inv @ t], dim=-1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"RandomAffine needs image batches (N, C, H, W), got shape {tuple(x.shape)}")
        theta = self.matrices(len(x), x.device, tuple(x.shape[-2:])).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode=self.interpolation, padding_mode="zeros", align_corners=False)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of (N, 3, H, W) images, kept as one channel (grey images are their own luma)."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


class ColourAugment:
    """SimCLR-style views of colour batches, every draw per image, all as tensor ops on the device.

    Random resized crop (area ``crop_scale`` of the image, aspect ratio in [3/4, 4/3], back to the input
    size) with a horizontal flip, then with probability ``jitter_p`` colour jitter (brightness, contrast,
    saturation, hue; applied in that fixed order, hue as a rotation of the chroma plane in YIQ space),
    greyscale with probability ``grey_p``, solarize with probability ``solarize_p``.
    """

    def __init__(
        self,
        crop_scale=(0.08, 1.0),
        flip: bool = True,
        jitter=(0.4, 0.4, 0.2, 0.1),
        jitter_p: float = 0.8,
        grey_p: float = 0.2,
        solarize_p: float = 0.0,
        generator=None,
    ):
        self.crop_scale = crop_scale
        self.flip = flip
        self.jitter = jitter
        self.jitter_p = jitter_p
        self.grey_p = grey_p
        self.solarize_p = solarize_p
        self.generator = generator

    def _rand(self, n: int, device, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=self.generator, device=device)

    def crop_matrices(self, n: int, device) -> torch.Tensor:
        """Output → input maps (normalised coordinates) of random resized crops, shape (n, 2, 3)."""
        area = self._rand(n, device, *self.crop_scale)
        log_ratio = self._rand(n, device, math.log(3 / 4), math.log(4 / 3))
        ratio = torch.exp(log_ratio)
        w = torch.sqrt(area * ratio).clamp(max=1.0)  # fractions of the side
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (1 - w) * self._rand(n, device, -1.0, 1.0)  # centre kept inside the image
        cy = (1 - h) * self._rand(n, device, -1.0, 1.0)
        sx = w
        if self.flip:
            sx = torch.where(self._rand(n, device) < 0.5, -w, w)
        zero = torch.zeros_like(w)
        return torch.stack([torch.stack([sx, zero, cx], -1), torch.stack([zero, h, cy], -1)], -2)

    def colour_jitter(self, x: torch.Tensor) -> torch.Tensor:
        n, dev = len(x), x.device
        b, c, s, h = self.jitter
        view = (n, 1, 1, 1)
        x = x * self._rand(n, dev, 1 - b, 1 + b).view(view)
        mean = _grey(x).mean(dim=(2, 3), keepdim=True)
        x = (x - mean) * self._rand(n, dev, 1 - c, 1 + c).view(view) + mean
        grey = _grey(x)
        x = (x - grey) * self._rand(n, dev, 1 - s, 1 + s).view(view) + grey
        if x.shape[1] == 1:  # grey images: no hue
            return x
        angle = self._rand(n, dev, -h, h) * 2 * math.pi
        to_yiq = torch.tensor(
            [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=dev, dtype=x.dtype
        )
        yiq = torch.einsum("ij,njhw->nihw", to_yiq, x)
        cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
        i, q = yiq[:, 1], yiq[:, 2]
        yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
        return torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_yiq), yiq)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"ColourAugment needs image batches (N, 3 or 1, H, W), got shape {tuple(x.shape)}")
        n, dev = len(x), x.device
        grid = F.affine_grid(self.crop_matrices(n, dev).to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        mask = (self._rand(n, dev) < self.jitter_p).view(n, 1, 1, 1)
        x = torch.where(mask, self.colour_jitter(x), x).clamp(0, 1)
        mask = (self._rand(n, dev) < self.grey_p).view(n, 1, 1, 1)
        x = torch.where(mask, _grey(x).expand_as(x), x)
        mask = (self._rand(n, dev) < self.solarize_p).view(n, 1, 1, 1)
        return torch.where(mask & (x >= 0.5), 1.0 - x, x)


class Cutout:
    """Erases one square of side ``size`` per image (the strong view of SCAN's self-labeling).

    Each image draws its own centre uniformly over its pixels; the square covers rows and columns
    ``[centre - size // 2, centre - size // 2 + size)`` and is clipped at the border, so a square centred
    near an edge erases less. Erased pixels take ``fill``: a scalar or a ``(1, C, 1, 1)`` tensor, e.g. the
    dataset mean, which normalises to 0 as SCAN's cutout (applied after normalising) does. Everything is
    one mask built on the device from the drawn centres, with no per-image Python.
    """

    def __init__(self, size: int, fill: float | torch.Tensor = 0.0, generator=None):
        if size < 0:
            raise ValueError(f"Cutout size must be non-negative, got {size}")
        self.size = int(size)
        self.fill = fill
        self.generator = generator

    def centres(self, n: int, height: int, width: int, device) -> torch.Tensor:
        """Random (row, column) centres, one per image, shape (n, 2), int64."""
        rows = torch.randint(0, height, (n,), generator=self.generator, device=device)
        cols = torch.randint(0, width, (n,), generator=self.generator, device=device)
        return torch.stack([rows, cols], dim=1)

    def mask(self, centres: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Boolean (n, 1, height, width) mask, True on each image's square around its centre."""
        start = centres - self.size // 2  # (n, 2)
        rows = torch.arange(height, device=centres.device).view(1, height)
        cols = torch.arange(width, device=centres.device).view(1, width)
        in_rows = (rows >= start[:, :1]) & (rows < start[:, :1] + self.size)  # (n, height)
        in_cols = (cols >= start[:, 1:]) & (cols < start[:, 1:] + self.size)  # (n, width)
        return (in_rows.unsqueeze(2) & in_cols.unsqueeze(1)).unsqueeze(1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"Cutout needs image batches (N, C, H, W), got shape {tuple(x.shape)}")
        if self.size == 0:
            return x
        height, width = x.shape[-2:]
        mask = self.mask(self.centres(len(x), height, width, x.device), height, width)
        fill = torch.as_tensor(self.fill, dtype=x.dtype, device=x.device)
        return torch.where(mask, fill, x)
