"""Batched augmentation on the training device (no per-sample Python).

:class:`RandomAffine` draws one rotation, shear and translation per image and warps the whole batch
with one sampling grid, like torchvision's ``RandomAffine(degrees, translate, shear)`` applied per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class RandomAffine:
    def __init__(self, degrees: float = 16.0, translate: float = 0.1, shear: float = 8.0, generator=None):
        self.degrees = float(degrees)
        self.translate = float(translate)
        self.shear = float(shear)
        self.generator = generator

    def _uniform(self, n: int, bound: float, device) -> torch.Tensor:
        u = torch.rand(n, generator=self.generator, device=device)
        return (2 * u - 1) * bound

    def matrices(self, n: int, device) -> torch.Tensor:
        """Inverse affine matrices (output → input, normalised coordinates), shape (n, 2, 3)."""
        angle = self._uniform(n, math.radians(self.degrees), device)
        shear = self._uniform(n, math.radians(self.shear), device)
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
        theta = self.matrices(len(x), x.device).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
