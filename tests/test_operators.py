"""The forward models as matrices (medivision.data.operators) against independent references: torch's own
antialiased and plain bicubic resampling, and k-space truncation done with numpy's FFT."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medivision.data.degradation_options import DegradationOptions
from medivision.data.degradations import degrade, upsample_bicubic
from medivision.data.operators import degrade_array, kspace_window, upsample_array

SHAPES = [(2, 1, 128, 128), (1, 2, 96, 160), (1, 1, 36, 20)]


def _kspace_reference(hr: np.ndarray, scale: int, window: str) -> np.ndarray:
    """Centre 1/scale of the spectrum, tapered, LR pixel centres moved by (scale - 1) / 2 HR pixels, real part."""
    height, width = hr.shape[-2:]
    low_h, low_w = height // scale, width // scale
    spectrum = np.fft.fftshift(np.fft.fft2(hr, norm="forward"), axes=(-2, -1))
    top, left = height // 2 - low_h // 2, width // 2 - low_w // 2
    band = spectrum[..., top:top + low_h, left:left + low_w]
    shift = (scale - 1) / 2
    rows = kspace_window(low_h, window, 0.5) * np.exp(2j * np.pi * (np.arange(low_h) - low_h // 2) * shift / height)
    cols = kspace_window(low_w, window, 0.5) * np.exp(2j * np.pi * (np.arange(low_w) - low_w // 2) * shift / width)
    band = band * (rows[:, None] * cols[None, :])
    return np.fft.ifft2(np.fft.ifftshift(band, axes=(-2, -1)), norm="forward").real


@pytest.mark.parametrize("shape", SHAPES)
def test_bicubic_matrices_equal_torchs_antialiased_and_plain_bicubic(shape):
    hr = torch.rand(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    low = F.interpolate(hr, size=(shape[2] // 4, shape[3] // 4), mode="bicubic", antialias=True, align_corners=False)
    assert np.abs(degrade_array(hr.numpy(), 4, "bicubic") - low.clamp(0, 1).numpy()).max() < 1e-6
    assert torch.allclose(degrade(hr.float(), 4, "bicubic"), low.clamp(0, 1).float(), atol=1e-6)
    up = F.interpolate(low, scale_factor=4, mode="bicubic", align_corners=False)
    assert np.abs(upsample_array(low.numpy(), 4) - up.numpy()).max() < 1e-6
    assert torch.allclose(upsample_bicubic(low.float()), up.clamp(0, 1).float(), atol=1e-6)


@pytest.mark.parametrize("window", ["none", "hann", "tukey"])
@pytest.mark.parametrize("shape", SHAPES)
def test_kspace_matrices_equal_truncating_the_fft(shape, window):
    hr = np.random.default_rng(1).random(shape)
    expected = np.clip(np.abs(_kspace_reference(hr, 4, window)), 0, 1)
    assert np.abs(degrade_array(hr, 4, "kspace", window) - expected).max() < 1e-6
    torch_lr = degrade(torch.from_numpy(hr).float(), 4, "kspace", DegradationOptions(window=window))
    assert np.abs(torch_lr.numpy() - expected).max() < 1e-5


def test_the_torch_and_numpy_forward_models_agree_under_autocast():
    """Training may call degrade inside bf16 autocast; the LR is still made in float32, as inference makes it."""
    hr = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = degrade(hr, 4, "kspace")
    assert low.dtype == torch.float32
    assert np.abs(low.numpy() - degrade_array(hr.numpy(), 4, "kspace")).max() < 1e-6
