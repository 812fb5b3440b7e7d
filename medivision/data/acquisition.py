"""Models of how a scanner makes a low-resolution image: truncated k-space, a Gaussian PSF, noise.

Batched torch functions on whatever device and float dtype the input has; medivision.data.degradations
combines them into the kinds that `data.degradation` names. The linear parts are the matrices of
medivision.data.operators, which inference applies with numpy: one definition of each forward model.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from medivision.data.operators import axis_operator, upsample_matrix


def kspace_lowpass(hr: Tensor, scale: int, window: str = "none", tukey_alpha: float = 0.5) -> Tensor:
    """The image a scanner reconstructs when it samples only the central 1/scale of k-space per axis.

    hr: float [B, C, H, W]. Returns float [B, C, H/scale, W/scale], real and signed (ringing can dip
    below zero; the magnitude is left to the caller). The Fourier transforms are normalised so the DC
    coefficient is the image mean and the inverse does not rescale: the LR image has exactly the HR
    image's mean. A linear phase moves the LR pixel centres to HR coordinate scale * i + (scale - 1) / 2,
    where antialiased bicubic puts them, so the kinds line up with each other and with the bicubic
    baseline; an image whose spectrum lies inside the band is sampled exactly there. The real part of
    the reconstruction is kept: that splits the Nyquist line of an even-sized band evenly between +-h/2,
    so a real object gives a real image. The band is multiplied by `window`
    (medivision.data.operators.kspace_window): "none" keeps it flat, which rings (Gibbs) at sharp edges;
    "hann" and "tukey" taper it towards the band edge, trading ringing for a little blur.
    """
    return separable(hr, scale, "kspace", window=window, tukey_alpha=tukey_alpha)


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
    return separable(hr, scale, "blur", psf_sigma=sigma)


def separable(hr: Tensor, scale: int, model: str, window: str = "none", tukey_alpha: float = 0.5,
              psf_sigma: float = 1.7) -> Tensor:
    """A forward model of medivision.data.operators on a batch: hr float [B, C, H, W] -> float [B, C, H/scale,
    W/scale], A_h X A_w^T - B_h X B_w^T per image (signed; no magnitude, no clipping), in hr's dtype and device.
    Autocast is off inside: the LR a model sees is made in the data's own precision."""
    rows = _matrices(hr.shape[-2], scale, model, window, tukey_alpha, psf_sigma, hr.device, hr.dtype)
    cols = _matrices(hr.shape[-1], scale, model, window, tukey_alpha, psf_sigma, hr.device, hr.dtype)
    with torch.autocast(hr.device.type, enabled=False):
        low = rows[0] @ hr @ cols[0].T
        if rows[1] is not None:
            low = low - rows[1] @ hr @ cols[1].T
    return low


def upsample(lr: Tensor, scale: int) -> Tensor:
    """Plain bicubic upsampling (medivision.data.operators.upsample_matrix), unclipped: lr float [B, C, h, w] ->
    [B, C, scale*h, scale*w] in lr's dtype and device."""
    rows = _upsampling(lr.shape[-2], scale, lr.device, lr.dtype)
    cols = _upsampling(lr.shape[-1], scale, lr.device, lr.dtype)
    with torch.autocast(lr.device.type, enabled=False):
        return rows @ lr @ cols.T


@functools.lru_cache(maxsize=64)
def _matrices(n: int, scale: int, model: str, window: str, tukey_alpha: float, psf_sigma: float,
              device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
    real, imag = axis_operator(n, scale, model, window, tukey_alpha, psf_sigma)
    return _tensor(real, device, dtype), None if imag is None else _tensor(imag, device, dtype)


@functools.lru_cache(maxsize=64)
def _upsampling(m: int, scale: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    return _tensor(upsample_matrix(m, scale), device, dtype)


def _tensor(array: np.ndarray, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.from_numpy(np.array(array)).to(device, dtype)
