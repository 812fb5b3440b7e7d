"""The noise-free forward models of the degradations, as matrices: the one definition that training (torch, on
any device) and inference (numpy, ONNX Runtime, no torch) both apply.

Every noise-free degradation is separable: along each image axis of n HR pixels it is a linear map to
n / scale LR pixels, followed by a pointwise step. An image X [n_h, n_w] degrades to

    pointwise(A_h @ X @ A_w.T - B_h @ X @ B_w.T)

where B is the imaginary part of a complex map (k-space) and zero otherwise, and `pointwise` is |.| for the
magnitude image of k-space and the identity for the others (every kind is then clipped to [0, 1]):

  bicubic   antialiased bicubic downsampling: the Keys cubic (a = -0.5) stretched by `scale`, weights cut at the
            border and renormalised (PIL's resampling, which torch's antialias=True follows).
  kspace    the central n / scale of the unitary-normalised DFT kept, times the window and a linear phase that
            puts LR pixel i at HR coordinate scale * i + (scale - 1) / 2, then the small inverse DFT;
            the real part is kept. Complex, so B is its imaginary part.
  blur      a Gaussian PSF (std psf_sigma HR pixels, borders reflected), sampled bilinearly on the same
            LR grid.

`upsample_matrix` is plain bicubic upsampling (Keys a = -0.75, edge pixels repeated): the bicubic baseline and
the back-projection step of data consistency.
"""

from __future__ import annotations

import functools
import math

import numpy as np

WINDOWS = ("none", "hann", "tukey")
# The forward models of the in-plane degradation kinds, noise left out (each kind names its own in
# medivision.data.degradation_options.KINDS). Through-plane kinds have none here: theirs is each volume's slice
# profile (medivision.data.slice_profile), which the through-plane pipeline applies.
MODELS = ("bicubic", "kspace", "blur")


@functools.lru_cache(maxsize=64)
def axis_operator(n: int, scale: int, model: str, window: str = "none", tukey_alpha: float = 0.5,
                  psf_sigma: float = 1.7) -> tuple[np.ndarray, np.ndarray | None]:
    """The map of one axis, n HR pixels -> n // scale LR pixels: (A, B), float64 [n // scale, n] each, B None
    for a real map. `model` is one of MODELS. Cached: arrays are read-only."""
    if n % scale:
        raise ValueError(f"HR size {n} is not divisible by scale {scale}")
    if model == "bicubic":
        real, imag = _antialiased_bicubic(n, scale), None
    elif model == "kspace":
        complex_map = _kspace(n, scale, window, tukey_alpha)
        real, imag = complex_map.real.copy(), complex_map.imag.copy()
    elif model == "blur":
        real, imag = _bilinear_centres(n, scale) @ _gaussian(n, psf_sigma), None
    else:
        raise ValueError(f"unknown forward model {model!r}; one of {', '.join(MODELS)}")
    for array in (real, imag):
        if array is not None:
            array.setflags(write=False)
    return real, imag


@functools.lru_cache(maxsize=64)
def upsample_matrix(m: int, scale: int) -> np.ndarray:
    """Plain bicubic upsampling of one axis, m -> scale * m pixels: float64 [scale * m, m] (read-only)."""
    out = np.zeros((scale * m, m))
    for i in range(scale * m):
        source = (i + 0.5) / scale - 0.5
        base = math.floor(source)
        for tap in range(-1, 3):
            out[i, min(max(base + tap, 0), m - 1)] += _cubic(source - (base + tap), -0.75)
    out.setflags(write=False)
    return out


def degrade_array(hr: np.ndarray, scale: int, model: str, window: str = "none", tukey_alpha: float = 0.5,
                  psf_sigma: float = 1.7) -> np.ndarray:
    """The forward model applied with numpy: hr float [..., H, W] in [0, 1] -> float32 [..., H/scale, W/scale]
    in [0, 1]."""
    rows = axis_operator(hr.shape[-2], scale, model, window, tukey_alpha, psf_sigma)
    cols = axis_operator(hr.shape[-1], scale, model, window, tukey_alpha, psf_sigma)
    x = hr.astype(np.float32)
    low = rows[0].astype(np.float32) @ x @ cols[0].T.astype(np.float32)
    if rows[1] is not None:
        low = np.abs(low - rows[1].astype(np.float32) @ x @ cols[1].T.astype(np.float32))
    return np.clip(low, 0.0, 1.0)


def upsample_array(lr: np.ndarray, scale: int) -> np.ndarray:
    """Plain bicubic upsampling with numpy, unclipped: float [..., h, w] -> float32 [..., scale*h, scale*w]."""
    rows = upsample_matrix(lr.shape[-2], scale).astype(np.float32)
    cols = upsample_matrix(lr.shape[-1], scale).astype(np.float32)
    return rows @ lr.astype(np.float32) @ cols.T


def _cubic(x: float, a: float) -> float:
    """Keys' cubic convolution kernel with parameter a."""
    x = abs(x)
    if x < 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _antialiased_bicubic(n: int, scale: int) -> np.ndarray:
    out = np.zeros((n // scale, n))
    support = 2.0 * scale
    for i in range(n // scale):
        centre = scale * (i + 0.5)
        first, last = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n)
        weights = np.array([_cubic((j - centre + 0.5) / scale, -0.5) for j in range(first, last)])
        out[i, first:last] = weights / weights.sum()
    return out


def kspace_window(size: int, window: str, tukey_alpha: float) -> np.ndarray:
    """Taper over a centred k-space band of `size` samples (frequencies -size//2 .. size - size//2 - 1):
    float64 [size], 1 at DC. "hann": 0.5 (1 + cos(2 pi k / size)), 0 at the band edge. "tukey": flat for
    |k| <= (1 - alpha) size / 2, then a half cosine down to 0 at the edge (alpha=1 is Hann, 0 no taper)."""
    k = np.arange(size) - size // 2
    if window == "none" or (window == "tukey" and tukey_alpha == 0):
        return np.ones(size)
    if window == "hann":
        return 0.5 * (1.0 + np.cos(2.0 * np.pi * k / size))
    if window == "tukey":
        flat, taper = (1.0 - tukey_alpha) * size / 2.0, tukey_alpha * size / 2.0
        return 0.5 * (1.0 + np.cos(np.pi * np.clip((np.abs(k) - flat) / taper, 0.0, 1.0)))
    raise ValueError(f"window={window!r} is not one of {', '.join(WINDOWS)}")


def _kspace(n: int, scale: int, window: str, tukey_alpha: float) -> np.ndarray:
    """complex [n // scale, n]: DFT (normalised so DC is the mean), the centred band times taper and phase, and
    the small inverse DFT without rescaling, so the LR image keeps the HR image's mean."""
    m = n // scale
    k = np.arange(m) - m // 2  # the kept frequencies, centred as fftshift orders them
    taper = kspace_window(m, window, tukey_alpha) * np.exp(2j * np.pi * k * ((scale - 1) / 2) / n)
    forward = np.exp(-2j * np.pi * np.outer(k, np.arange(n)) / n) / n  # [m, n]: the band's coefficients
    inverse = np.exp(2j * np.pi * np.outer(np.arange(m), k) / m)  # [m, m]
    return inverse @ (taper[:, None] * forward)


def _gaussian(n: int, sigma: float) -> np.ndarray:
    """[n, n]: convolution with a normalised Gaussian of std sigma, radius ceil(3 sigma), borders reflected."""
    radius = max(1, math.ceil(3.0 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    out = np.zeros((n, n))
    for i in range(n):
        for offset, weight in zip(offsets, kernel):
            j = abs(i + offset)
            out[i, j if j < n else 2 * (n - 1) - j] += weight
    return out


def _bilinear_centres(n: int, scale: int) -> np.ndarray:
    """[n // scale, n]: linear interpolation at HR coordinate scale * i + (scale - 1) / 2."""
    out = np.zeros((n // scale, n))
    for i in range(n // scale):
        source = scale * (i + 0.5) - 0.5
        base = math.floor(source)
        out[i, base] += 1.0 - (source - base)
        out[i, min(base + 1, n - 1)] += source - base
    return out
