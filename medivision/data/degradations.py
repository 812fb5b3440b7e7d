"""Batched, device-agnostic image transforms: HR -> LR degradation, the bicubic baseline, augmentation.

`data.degradation` names how LR is made from HR float [B, C, H, W] in [0, 1]; every kind returns
float [B, C, H/scale, W/scale] in [0, 1] (128 -> 32 at 4x) on the input's device, in its dtype:

  bicubic       antialiased bicubic downsampling, what the research set was made with. Deterministic.
                Intensity: a local weighted mean (the kernel's small negative lobes can overshoot at hard
                edges, clipped to [0, 1]).
  kspace        a low-resolution acquisition: only the central 1/scale of k-space per axis is kept,
                optionally tapered (window none | hann | tukey), and the magnitude image is reconstructed
                (medivision.data.acquisition.kspace_lowpass). Deterministic. Intensity: the image mean is
                kept (DC is untouched); without a window, sharp edges ring (Gibbs), and ringing that dips
                below zero is folded up by the magnitude, as on a scanner's magnitude image; values above
                1 are clipped.
  kspace_noise  kspace plus complex Gaussian noise of std sigma per channel before the magnitude: Rician
                noise. Intensity: biased upwards where the signal is weak (the background becomes
                Rayleigh noise of mean sigma * sqrt(pi / 2)); about unbiased where signal >> sigma.
  blur_noise    a Gaussian PSF (psf_sigma HR pixels) sampled on the LR grid, plus Gaussian noise of std
                sigma, clipped to [0, 1]. Intensity: mean kept up to the clipping of the noise at 0 and 1.
  random        every image gets one of `kinds`, drawn uniformly (training for robustness).
  slices        a thick-slice acquisition along the rows only (through-plane models, data.scale = 1): each
                image gets one of SLICE_BANK geometries, drawn once with a fixed seed from `slice_factor`,
                `slice_profiles` and `slice_gap` (medivision.data.slice_profile), the slabs that start inside
                the image averaged and interpolated back onto the HR grid by cubic B-spline (slab_operator):
                float [B, C, H, W], the input a through-plane model refines.

sigma is drawn per image, uniformly from `noise` = [low, high] (a single number: a fixed level). Each kind's
noise-free part (its forward model) is a matrix of medivision.data.operators, which inference applies too.

Randomness (the kind of `random`, the noise level, the noise): with `seeds`, one int per image, each
image's draws come from a numpy generator seeded with its seed, and are then moved to the batch's device,
so validation and test LR are the same on every run, for any batch composition, on CPU and GPU (up to
the float rounding of the FFT and convolution arithmetic on each device). Without seeds (training) fresh
draws are made on the batch's device from torch's global generator: no host-device traffic.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from medivision.data.acquisition import gaussian_psf, kspace_lowpass, rician_magnitude, separable, upsample
from medivision.data.degradation_options import KINDS, DegradationOptions
from medivision.data.slice_profile import SliceGeometry, slab_operator
from medivision.data.symmetry import SHAPE_KEEPING, SYMMETRIES, turn

# How many slice geometries the `slices` kind draws from.
SLICE_BANK = 256


class Draws(NamedTuple):
    """The random numbers of one batch: everything a random degradation needs, drawn in one place."""

    kind: Tensor  # float [B] uniform in [0, 1): picks the kind of `random`, the slab geometry of `slices`
    level: Tensor  # float [B] uniform in [0, 1): where sigma lies in the noise range
    noise: Tensor | None  # float [B, 2, C, h, w] standard normal (real and imaginary channels); None: no noise


def degrade(
    hr: Tensor,
    scale: int = 4,
    kind: str = "bicubic",
    options: DegradationOptions | None = None,
    seeds: Sequence[int] | None = None,
    noise: bool = True,
) -> Tensor:
    """Make the low-resolution input from a high-resolution batch (the kinds are described above).

    hr: float [B, C, H, W] in [0, 1] on any device, H and W divisible by `scale` (1 for `slices`, 2 or more for
    the others). Returns float [B, C, H/scale, W/scale] in [0, 1] on the same device, in the same dtype.
    kind: one of KINDS with a scale it allows, checked where the config enters (medivision.data.settings).
    options: the kinds' settings (None: the defaults). seeds: one int per image for reproducible draws
    (see sample_seeds); None draws afresh. noise=False gives the noise-free forward model that data
    consistency compares with (kspace_noise -> kspace, blur_noise -> the PSF alone); a `random` mix has no
    single forward model, and bicubic stands in for it.
    """
    height, width = hr.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f"HR size {height}x{width} is not divisible by scale {scale}")
    if seeds is not None and len(seeds) != len(hr):
        raise ValueError(f"got {len(seeds)} seeds for a batch of {len(hr)} images")
    spec = KINDS[kind]
    # Draws that are not noise (the slab geometry of `slices`) are made whether or not noise is wanted.
    draws = random_draws(hr, scale, seeds, spec.noise) if spec.draws and (noise or not spec.noise) else None
    return _degrade(hr, scale, kind, options or DegradationOptions(), draws).clamp(0.0, 1.0)


def _degrade(hr: Tensor, scale: int, kind: str, options: DegradationOptions, draws: Draws | None) -> Tensor:
    """One kind, before clipping to [0, 1]; draws is None for the noise-free forward model."""
    return IMPLEMENTATIONS[kind](hr, scale, options, draws)


def _bicubic(hr: Tensor, scale: int, options: DegradationOptions, draws: Draws | None) -> Tensor:
    return separable(hr, scale, "bicubic")


def _kspace(hr: Tensor, scale: int, options: DegradationOptions, draws: Draws | None) -> Tensor:
    return kspace_lowpass(hr, scale, options.window, options.tukey_alpha).abs()


def _kspace_noise(hr: Tensor, scale: int, options: DegradationOptions, draws: Draws | None) -> Tensor:
    signal = kspace_lowpass(hr, scale, options.window, options.tukey_alpha)
    return signal.abs() if draws is None else rician_magnitude(signal, _sigma(options, draws), draws.noise)


def _blur_noise(hr: Tensor, scale: int, options: DegradationOptions, draws: Draws | None) -> Tensor:
    blurred = gaussian_psf(hr, scale, options.psf_sigma)
    return blurred if draws is None else blurred + _sigma(options, draws) * draws.noise[:, 0]


def _random(hr: Tensor, scale: int, options: DegradationOptions, draws: Draws | None) -> Tensor:
    if draws is None:
        return _bicubic(hr, scale, options, draws)
    outputs = torch.stack([_degrade(hr, scale, name, options, draws) for name in options.kinds])
    # Computing every kind and picking per image avoids reading the draws back to the host.
    pick = (draws.kind * len(options.kinds)).long().clamp_max(len(options.kinds) - 1)
    return outputs[pick, torch.arange(len(hr), device=hr.device)]


def _slices(hr: Tensor, scale: int, options: DegradationOptions, draws: Draws) -> Tensor:
    bank = _slice_bank(hr.shape[-2], options.slice_factor, options.slice_profiles, options.slice_gap, hr.device,
                       hr.dtype)
    pick = (draws.kind * len(bank)).long().clamp_max(len(bank) - 1)
    with torch.autocast(hr.device.type, enabled=False):
        return bank[pick][:, None] @ hr


# Each kind of medivision.data.degradation_options.KINDS, by the same name: hr [B, C, H, W], scale, options and
# draws (None: noise-free) -> LR [B, C, H/scale, W/scale] before clipping.
IMPLEMENTATIONS = {"bicubic": _bicubic, "kspace": _kspace, "kspace_noise": _kspace_noise, "blur_noise": _blur_noise,
                   "random": _random, "slices": _slices}


@functools.lru_cache(maxsize=8)
def _slice_bank(size: int, factors: tuple[float, float], profiles: tuple[str, ...], gaps: tuple[float, float],
                device: torch.device, dtype: torch.dtype) -> Tensor:
    """float [SLICE_BANK, size, size]: the slab_operator of geometries drawn with a fixed seed, so every run and
    device trains on the same ones."""
    rng = np.random.default_rng(0)
    matrices = []
    for _ in range(SLICE_BANK):
        spacing = rng.uniform(*factors)
        geometry = SliceGeometry(spacing, spacing * (1.0 - rng.uniform(*gaps)), profiles[rng.integers(len(profiles))])
        matrices.append(slab_operator(geometry, size))
    return torch.from_numpy(np.stack(matrices)).to(device, dtype)


def _sigma(options: DegradationOptions, draws: Draws) -> Tensor:
    """float [B, 1, 1, 1]: each image's noise std, uniform in the configured range."""
    low, high = options.noise
    return (low + (high - low) * draws.level).view(-1, 1, 1, 1)


def random_draws(hr: Tensor, scale: int, seeds: Sequence[int] | None = None, noise: bool = True) -> Draws:
    """The draws for a batch hr [B, C, H, W]: from each image's seed on the CPU, or afresh on hr's device; without
    `noise` (a kind whose draws are only its pick, `slices`), Draws.noise is None."""
    batch, channels, height, width = hr.shape
    shape = (2, channels, height // scale, width // scale)
    if seeds is None:
        uniform = torch.rand(2, batch, device=hr.device, dtype=hr.dtype)
        normal = torch.randn(batch, *shape, device=hr.device, dtype=hr.dtype) if noise else None
        return Draws(uniform[0], uniform[1], normal)
    # numpy's seeding uses every bit of a large seed (torch's CPU generator keeps only the low 32).
    generators = [np.random.default_rng(int(seed)) for seed in seeds]
    uniform = torch.from_numpy(np.stack([rng.random(2) for rng in generators])).to(hr.device, hr.dtype)
    if not noise:
        return Draws(uniform[:, 0], uniform[:, 1], None)
    normal = torch.from_numpy(np.stack([rng.standard_normal(shape, dtype=np.float32) for rng in generators]))
    return Draws(uniform[:, 0], uniform[:, 1], normal.to(hr.device, hr.dtype))


def sample_seeds(seed: int, index: Tensor) -> list[int]:
    """One seed per image from the run's seed and each image's stable index (its row in the cached data).

    index: int64 [B] >= 0, on any device (read back to the host: used for validation and test, not training).
    """
    return [(int(seed) % 2**32) * 2**32 + position for position in index.tolist()]


def upsample_bicubic(lr: Tensor, scale: int = 4) -> Tensor:
    """The bicubic baseline: plain bicubic upsampling.

    lr: float [B, C, h, w] in [0, 1]. Returns float [B, C, h*scale, w*scale] in [0, 1].
    """
    return upsample(lr, scale).clamp(0.0, 1.0)


def augment(hr: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Apply an independent random flip/rotation to each sample of a batch.

    hr: [B, C, H, W], any dtype and device. Returns a tensor of the same shape, dtype and device
    where each sample is one of the 8 symmetries of the square (rot90 by k in 0..3, then an optional
    horizontal flip), drawn uniformly. Non-square images only get the 4 shape-preserving ones.
    The draws happen on the CPU (`generator` must be a CPU generator) so a seeded run gives the
    same augmentation on any device.
    """
    square = hr.shape[-1] == hr.shape[-2]
    choice = torch.randint(0, SYMMETRIES if square else len(SHAPE_KEEPING), (hr.shape[0],), generator=generator)
    # One gather through precomputed pixel maps: the draws never come back to the host, so a GPU batch is
    # augmented without waiting for the device (a loop over the drawn transforms would have to).
    maps = _symmetry_maps(hr.shape[-2], hr.shape[-1], hr.device)[choice.to(hr.device, non_blocking=True)]
    flat = hr.flatten(-2)
    return flat.gather(-1, maps[:, None, :].expand(-1, flat.shape[1], -1)).view_as(hr)


@functools.lru_cache(maxsize=8)
def _symmetry_maps(height: int, width: int, device: torch.device) -> Tensor:
    """int64 [T, H*W]: row t holds, for each output pixel of symmetry t, the flat index of its source pixel (the 8
    symmetries of medivision.data.symmetry for a square image, its SHAPE_KEEPING 4 otherwise)."""
    pixels = np.arange(height * width, dtype=np.int64).reshape(height, width)
    transforms = range(SYMMETRIES) if height == width else SHAPE_KEEPING
    return torch.from_numpy(np.stack([turn(pixels, transform).reshape(-1) for transform in transforms])).to(device)
