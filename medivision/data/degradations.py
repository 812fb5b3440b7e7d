"""Batched, device-agnostic image transforms: HR -> LR degradation, the bicubic baseline, augmentation."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

DEGRADATIONS = ("bicubic",)


def degrade(hr: Tensor, scale: int = 4, kind: str = "bicubic") -> Tensor:
    """Make the low-resolution input from a high-resolution batch. Pure and deterministic.

    hr: float [B, C, H, W] in [0, 1] on any device, H and W divisible by `scale`.
    Returns float [B, C, H/scale, W/scale] in [0, 1] on the same device.
    kind "bicubic": antialiased bicubic downsampling (what the research set was made with); without
    antialiasing a 4x bicubic only looks at a 4-pixel neighbourhood and aliases fine texture.
    """
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; choose one of {', '.join(DEGRADATIONS)}")
    height, width = hr.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f"HR size {height}x{width} is not divisible by scale {scale}")
    lr = F.interpolate(
        hr, size=(height // scale, width // scale), mode="bicubic", antialias=True, align_corners=False
    )
    return lr.clamp(0.0, 1.0)


def upsample_bicubic(lr: Tensor, scale: int = 4) -> Tensor:
    """The bicubic baseline: plain bicubic upsampling.

    lr: float [B, C, h, w] in [0, 1]. Returns float [B, C, h*scale, w*scale] in [0, 1].
    """
    hr = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)
    return hr.clamp(0.0, 1.0)


def augment(hr: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Apply an independent random flip/rotation to each sample of a batch.

    hr: [B, C, H, W], any dtype and device. Returns a tensor of the same shape, dtype and device
    where each sample is one of the 8 symmetries of the square (rot90 by k in 0..3, then an optional
    horizontal flip), drawn uniformly. Non-square images only get the 4 shape-preserving ones.
    The draws happen on the CPU (`generator` must be a CPU generator) so a seeded run gives the
    same augmentation on any device.
    """
    square = hr.shape[-1] == hr.shape[-2]
    choice = torch.randint(0, 8 if square else 4, (hr.shape[0],), generator=generator)
    # One gather through precomputed pixel maps: the draws never come back to the host, so a GPU batch is
    # augmented without waiting for the device (a loop over the drawn transforms would have to).
    maps = _symmetry_maps(hr.shape[-2], hr.shape[-1], hr.device)[choice.to(hr.device, non_blocking=True)]
    flat = hr.flatten(-2)
    return flat.gather(-1, maps[:, None, :].expand(-1, flat.shape[1], -1)).view_as(hr)


@functools.lru_cache(maxsize=8)
def _symmetry_maps(height: int, width: int, device: torch.device) -> Tensor:
    """int64 [T, H*W]: row t holds, for each output pixel of symmetry t, the flat index of its source pixel."""
    square = height == width
    pixels = torch.arange(height * width).view(height, width)
    maps = [_dihedral(pixels, transform, square).flatten() for transform in range(8 if square else 4)]
    return torch.stack(maps).to(device)


def _dihedral(x: Tensor, transform: int, square: bool) -> Tensor:
    if not square:
        # identity, horizontal flip, vertical flip, rot180: the symmetries that keep H x W
        dims = ((), (-1,), (-2,), (-2, -1))[transform]
        return x.flip(dims) if dims else x
    rotated = torch.rot90(x, transform % 4, dims=(-2, -1))
    return rotated.flip(-1) if transform >= 4 else rotated
