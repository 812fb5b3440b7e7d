"""The logged PSNR/SSIM agree with independent computations (scikit-image, SciPy) on fixed images."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure

from medivision.report.panels import brain_samples
from medivision.training.module import _metrics
from tests.reference import ssim_map

RADIUS = 5  # Gaussian window 11x11, sigma 1.5 (Wang et al. 2004)


def _fixed_pair():
    generator = torch.Generator().manual_seed(7)
    hr = torch.rand(3, 1, 64, 64, generator=generator)
    hr = torch.nn.functional.avg_pool2d(hr, 3, stride=1, padding=1)  # some structure for SSIM to see
    sr = (hr + 0.05 * torch.randn(hr.shape, generator=generator)).clamp(0, 1)
    return sr.double(), hr.double()


def test_logged_psnr_and_ssim_match_independent_computations():
    sr, hr = _fixed_pair()
    metrics = _metrics().double()
    metrics["psnr"].update(sr, hr)
    metrics["ssim"].update(sr, hr)
    pairs = [(h[0].numpy(), s[0].numpy()) for h, s in zip(hr, sr)]

    psnr = np.mean([peak_signal_noise_ratio(h, s, data_range=1.0) for h, s in pairs])
    ssim = np.mean([ssim_map(h, s).mean() for h, s in pairs])  # torchmetrics averages the whole map
    assert metrics["psnr"].compute().item() == pytest.approx(psnr, abs=1e-5)
    assert metrics["ssim"].compute().item() == pytest.approx(ssim, abs=1e-6)
    assert 20 < psnr < 35 and 0.3 < ssim < 0.99  # a real, imperfect reconstruction, not a trivial case


def test_ssim_interior_equals_scikit_image():
    """Away from the borders, torchmetrics' SSIM map is scikit-image's (which crops the borders)."""
    sr, hr = _fixed_pair()
    _, full = structural_similarity_index_measure(sr, hr, data_range=1.0, return_full_image=True)
    for index in range(hr.shape[0]):
        interior = full[index, 0, RADIUS:-RADIUS, RADIUS:-RADIUS].mean().item()
        expected = structural_similarity(hr[index, 0].numpy(), sr[index, 0].numpy(), data_range=1.0,
                                         gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert interior == pytest.approx(expected, abs=1e-6)


def test_psnr_is_per_image_then_averaged():
    hr = torch.zeros(2, 1, 8, 8)
    sr = torch.stack([torch.full((1, 8, 8), 0.1), torch.full((1, 8, 8), 0.01)])
    metrics = _metrics()
    metrics["psnr"].update(sr, hr)
    assert metrics["psnr"].compute().item() == pytest.approx((20.0 + 40.0) / 2, abs=1e-3)


def test_panel_samples_show_brain_not_the_empty_edge_slices():
    hr = torch.zeros(10, 1, 16, 16, dtype=torch.uint8)
    hr[4:, :, 2:14, 2:14] = 200  # the first four images are empty, as a split's edge slices can be
    hr[7, :, 6:10, 6:10] = 0  # and one brain image shows less than the median
    picks = brain_samples(hr, 3)
    assert len(picks) == 3 and all(pick >= 4 and pick != 7 for pick in picks)
    assert picks == sorted(set(picks))  # spread, no image twice
