"""Models of how a scanner makes a low-resolution image: truncated k-space, a Gaussian PSF, noise.

Batched torch functions on whatever device and float dtype the input has; medivision.data.degradations
combines them into the kinds that `data.degradation` names.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

WINDOWS = ("none", "hann", "tukey")


def kspace_lowpass(hr: Tensor, scale: int, window: str = "none", tukey_alpha: float = 0.5) -> Tensor:
    """The image a scanner reconstructs when it samples only the central 1/scale of k-space per axis.

    hr: float [B, C, H, W]. Returns float [B, C, H/scale, W/scale], real and signed (ringing can dip
    below zero; the magnitude is left to the caller). The Fourier transforms are normalised so the DC
    coefficient is the image mean and the inverse does not rescale: the LR image has exactly the HR
    image's mean. A linear phase moves the LR pixel centres to HR coordinate scale * i + (scale - 1) / 2,
    where antialiased bicubic puts them, so the kinds line up with each other and with the bicubic
    baseline; an image whose spectrum lies inside the band is sampled exactly there. The real part of
    the reconstruction is kept: that splits the Nyquist line of an even-sized band evenly between +-h/2,
    so a real object gives a real image. The band is multiplied by `window` (see kspace_window): "none"
    keeps it flat, which rings (Gibbs) at sharp edges; "hann" and "tukey" taper it towards the band edge,
    trading ringing for a little blur.
    """
    height, width = hr.shape[-2:]
    low_h, low_w = height // scale, width // scale
    spectrum = torch.fft.fftshift(torch.fft.fft2(hr, norm="forward"), dim=(-2, -1))
    top, left = height // 2 - low_h // 2, width // 2 - low_w // 2
    band = spectrum[..., top : top + low_h, left : left + low_w]
    shift = (scale - 1) / 2
    rows = _centred_taper(low_h, height, shift, window, tukey_alpha, hr)
    cols = _centred_taper(low_w, width, shift, window, tukey_alpha, hr)
    band = band * (rows[:, None] * cols[None, :])
    return torch.fft.ifft2(torch.fft.ifftshift(band, dim=(-2, -1)), norm="forward").real


def _centred_taper(size: int, full: int, shift: float, window: str, tukey_alpha: float, like: Tensor) -> Tensor:
    """complex [size]: the window times exp(2 pi i k shift / full), which samples `shift` HR pixels later."""
    k = torch.arange(size, device=like.device, dtype=like.dtype) - size // 2
    phase = torch.polar(torch.ones_like(k), 2.0 * math.pi * k * shift / full)
    return kspace_window(size, window, tukey_alpha, like.device, like.dtype) * phase


def kspace_window(size: int, window: str, tukey_alpha: float, device=None, dtype=torch.float32) -> Tensor:
    """Taper over a centred k-space band of `size` samples (frequencies -size//2 .. size - size//2 - 1).

    Returns float [size], 1 at DC (so the mean is kept). "hann": 0.5 (1 + cos(2 pi k / size)), falling to 0
    at the band edge. "tukey": flat for |k| <= (1 - alpha) size / 2, then a half cosine down to 0 at the
    edge; alpha=1 is Hann, alpha=0 is no taper. "none": all ones.
    """
    k = torch.arange(size, device=device, dtype=dtype) - size // 2
    if window == "none":
        return torch.ones_like(k)
    if window == "hann":
        return 0.5 * (1.0 + torch.cos(2.0 * math.pi * k / size))
    if window == "tukey":
        flat = (1.0 - tukey_alpha) * size / 2.0
        taper = tukey_alpha * size / 2.0
        if taper == 0:
            return torch.ones_like(k)
        ramp = ((k.abs() - flat) / taper).clamp(0.0, 1.0)
        return 0.5 * (1.0 + torch.cos(math.pi * ramp))
    raise ValueError(f"window={window!r} is not one of {', '.join(WINDOWS)}")


def rician_magnitude(signal: Tensor, sigma: Tensor, noise: Tensor) -> Tensor:
    """|signal + sigma (n_re + i n_im)|: the magnitude image of a noisy complex acquisition.

    signal: float [B, C, h, w], the noise-free (real) image; sigma: float [B, 1, 1, 1], noise std per
    real and imaginary channel (in units of full intensity); noise: float [B, 2, C, h, w], standard
    normal. Returns float [B, C, h, w] >= 0. Where the signal is 0 (background) the result is Rayleigh
    distributed with mean sigma * sqrt(pi / 2); where it is large against sigma, about signal + N(0, sigma^2).
    """
    return torch.hypot(signal + sigma * noise[:, 0], sigma * noise[:, 1])


def gaussian_psf(hr: Tensor, scale: int, sigma: float) -> Tensor:
    """Blur with a Gaussian point spread function of std `sigma` HR pixels, then sample the LR grid.

    hr: float [B, C, H, W]. Returns float [B, C, H/scale, W/scale]. The kernel sums to 1 and borders are
    reflected, so flat regions keep their value and the mean is kept up to edge effects. LR pixel centres
    sit where antialiased bicubic puts them (HR coordinate scale * i + (scale - 1) / 2), read bilinearly.
    """
    batch, channels, height, width = hr.shape
    radius = max(1, math.ceil(3.0 * sigma))
    offsets = torch.arange(-radius, radius + 1, device=hr.device, dtype=hr.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    planes = hr.reshape(batch * channels, 1, height, width)
    planes = F.conv2d(F.pad(planes, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    planes = F.conv2d(F.pad(planes, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    low = F.interpolate(planes, size=(height // scale, width // scale), mode="bilinear", align_corners=False)
    return low.reshape(batch, channels, height // scale, width // scale)
