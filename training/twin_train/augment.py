"""Augmentation on top of twin's preprocessed tensors (never on raw images, so serving's
preprocessing stays the only one): small affine jitter, stroke-width change (dilation or
erosion by max/min pooling), additive noise. Works in ink space ([0, 1], ink = 1), then
re-applies the manifest's (x - mean) / std."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass
class AugmentSpec:
    rotate_deg: float = 4.0
    scale: float = 0.08  # zoom in [1 - s, 1 + s]
    shear: float = 0.10
    translate: float = 0.04  # fraction of the image side
    p_dilate: float = 0.25
    p_erode: float = 0.10
    p_noise: float = 0.3
    noise_std: float = 0.05


def augment(x: torch.Tensor, spec: AugmentSpec, mean: float, std: float, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    ink = x * std + mean

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=g) * (hi - lo) + lo

    theta = u(-spec.rotate_deg, spec.rotate_deg) * math.pi / 180
    s = u(1 - spec.scale, 1 + spec.scale)
    sh = u(-spec.shear, spec.shear)
    tx, ty = u(-spec.translate, spec.translate) * 2, u(-spec.translate, spec.translate) * 2
    cos, sin = torch.cos(theta), torch.sin(theta)
    # inverse map (output -> input coordinates) of rotation·shear·scale; aspect ratio of the
    # normalized grid is corrected so rotation does not skew wide images
    h, w = x.shape[2], x.shape[3]
    a = h / w
    m = torch.zeros(n, 2, 3)
    m[:, 0, 0] = cos / s
    m[:, 0, 1] = (-sin * a + sh) / s
    m[:, 1, 0] = sin / a / s
    m[:, 1, 1] = cos / s
    m[:, 0, 2] = tx
    m[:, 1, 2] = ty
    grid = F.affine_grid(m, list(x.shape), align_corners=False)
    ink = F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    r = torch.rand(n, generator=g)
    dil = (r < spec.p_dilate)[:, None, None, None]
    ero = ((r >= spec.p_dilate) & (r < spec.p_dilate + spec.p_erode))[:, None, None, None]
    if dil.any():
        ink = torch.where(dil, F.max_pool2d(ink, 3, 1, 1), ink)
    if ero.any():
        ink = torch.where(ero, _erode(ink), ink)
    noisy = (torch.rand(n, generator=g) < spec.p_noise)[:, None, None, None]
    if noisy.any():
        noise = torch.randn(x.shape, generator=g) * spec.noise_std
        ink = torch.where(noisy, ink + noise, ink)
    ink = ink.clamp(0, 1)
    return (ink - mean) / std


def _erode(ink: torch.Tensor) -> torch.Tensor:
    """Thins strokes by a 2×2 min filter (a 3×3 one erases the 1–2 px strokes of small inputs)."""
    padded = F.pad(ink, (0, 1, 0, 1), value=0.0)
    return -F.max_pool2d(-padded, 2, 1)
