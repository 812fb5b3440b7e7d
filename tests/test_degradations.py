"""The MRI-like degradations: shape contract, documented intensity behaviour, reproducible draws, the mix."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch

from medivision.data.acquisition import gaussian_psf
from medivision.data.degradation_options import (
    DEGRADATIONS,
    KINDS,
    MIXABLE,
    THROUGH_PLANE_KINDS,
    DegradationOptions,
)
from medivision.data.degradations import IMPLEMENTATIONS, degrade, sample_seeds
from medivision.data.operators import MODELS
from medivision.data.settings import Augmentation, data_module

NOISELESS = DegradationOptions(noise=(0.0, 0.0))


def brain_batch(count: int = 4, size: int = 128, dtype=torch.float32) -> torch.Tensor:
    """float [count, 1, size, size] in [0, 1]: an ellipse of texture on black, like an axial slice."""
    generator = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    head = ((x / 0.8) ** 2 + (y / 0.9) ** 2 < 1).to(dtype)
    texture = 0.5 + 0.3 * torch.rand(count, 1, size, size, generator=generator, dtype=dtype)
    return texture * head


def band_limited(size: int = 128) -> tuple[torch.Tensor, Callable]:
    """A smooth float64 image [1, 1, size, size] in (0, 1) with frequencies well inside a 4x band, and its formula."""
    def formula(row, col):
        wave = 2 * math.pi / size
        return 0.5 + 0.15 * torch.cos(wave * 3 * col + 0.4) + 0.1 * torch.sin(wave * 5 * row)

    row, col = torch.meshgrid(*(torch.arange(size, dtype=torch.float64),) * 2, indexing="ij")
    return formula(row, col)[None, None], formula


def test_every_registered_kind_has_one_implementation_and_a_forward_model_or_none():
    assert list(IMPLEMENTATIONS) == list(KINDS)
    for name, kind in KINDS.items():
        assert kind.forward in MODELS or (kind.forward is None and kind.through_plane), name
        assert set(kind.options) <= {field for field in DegradationOptions.__dataclass_fields__}, name
    # what `random` mixes by default: every in-plane kind but the mix itself
    assert MIXABLE == ("bicubic", "kspace", "kspace_noise", "blur_noise")


@pytest.mark.parametrize("kind", [kind for kind in DEGRADATIONS if kind not in THROUGH_PLANE_KINDS])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_kind_keeps_the_shape_contract_dtype_and_range(kind, dtype):
    hr = brain_batch(3, dtype=dtype)
    lr = degrade(hr, 4, kind)
    assert lr.shape == (3, 1, 32, 32) and lr.dtype == dtype and lr.device == hr.device
    assert lr.min() >= 0 and lr.max() <= 1
    assert degrade(torch.rand(2, 3, 64, 48, dtype=dtype), 2, kind).shape == (2, 3, 32, 24)
    assert degrade(hr, 4, kind, seeds=[1, 2, 3]).shape == (3, 1, 32, 32)


def test_kspace_samples_a_band_limited_image_exactly_at_the_bicubic_pixel_centres():
    hr, formula = band_limited()
    lr = degrade(hr, 4, "kspace")
    centres = torch.arange(32, dtype=torch.float64) * 4 + 1.5  # where antialiased bicubic puts LR pixels
    row, col = torch.meshgrid(centres, centres, indexing="ij")
    torch.testing.assert_close(lr[0, 0], formula(row, col), atol=1e-12, rtol=0)
    # ...so kspace and bicubic LR of a smooth image line up (bicubic only blurs a little)
    assert (degrade(hr, 4, "bicubic") - lr).abs().max() < 0.005


def test_kspace_without_noise_keeps_the_mean():
    hr = 0.3 + 0.4 * torch.rand(4, 1, 128, 128, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for window in ("none", "hann", "tukey"):
        lr = degrade(hr, 4, "kspace", DegradationOptions(window=window))
        torch.testing.assert_close(lr.mean(dim=(1, 2, 3)), hr.mean(dim=(1, 2, 3)), atol=1e-12, rtol=0)


def ringing(window: str) -> float:
    """Over- plus undershoot of the LR image of a 0.2 -> 0.8 bar, the most over the 4 sub-LR-pixel edge offsets.

    The LR grid samples the ringing at a few points only; moving the edge by one HR pixel at a time
    lets them fall on its peaks.
    """
    worst = 0.0
    for edge in range(64, 68):
        hr = torch.full((1, 1, 128, 128), 0.2, dtype=torch.float64)
        hr[..., edge:edge + 40] = 0.8
        lr = degrade(hr, 4, "kspace", DegradationOptions(window=window, tukey_alpha=0.5))
        worst = max(worst, float(lr.max() - 0.8) + float(0.2 - lr.min()))
    return worst


def test_a_window_reduces_ringing_at_an_edge():
    none, tukey, hann = ringing("none"), ringing("tukey"), ringing("hann")
    assert none > 0.1  # Gibbs: about 9% of the 0.6 step on either side of each edge
    assert hann < none / 10
    assert hann < tukey < none


def test_rician_noise_in_the_background_and_in_the_signal():
    options = DegradationOptions(noise=(0.05, 0.05))
    seeds = list(range(16))
    background = degrade(torch.zeros(16, 1, 128, 128), 4, "kspace_noise", options, seeds)
    assert float(background.mean()) == pytest.approx(0.05 * math.sqrt(math.pi / 2), rel=0.03)  # Rayleigh
    signal = degrade(torch.full((16, 1, 128, 128), 0.6), 4, "kspace_noise", options, seeds)
    assert float(signal.mean()) == pytest.approx(0.6, abs=0.004)  # bias sigma^2 / (2 * 0.6) = 0.002
    assert float(signal.std()) == pytest.approx(0.05, rel=0.05)


def test_blur_noise_keeps_flat_regions_and_adds_the_configured_noise():
    flat = torch.full((8, 1, 128, 128), 0.5)
    torch.testing.assert_close(degrade(flat, 4, "blur_noise", NOISELESS), torch.full((8, 1, 32, 32), 0.5))
    noisy = degrade(flat, 4, "blur_noise", DegradationOptions(noise=(0.02, 0.02)), list(range(8)))
    assert float(noisy.mean()) == pytest.approx(0.5, abs=0.002)
    assert float(noisy.std()) == pytest.approx(0.02, rel=0.05)
    hr = brain_batch(2)
    wide = degrade(hr, 4, "blur_noise", DegradationOptions(noise=(0.0, 0.0), psf_sigma=3.0))
    narrow = degrade(hr, 4, "blur_noise", DegradationOptions(noise=(0.0, 0.0), psf_sigma=0.5))
    assert wide.std() < narrow.std()  # a wider PSF averages more of the texture away


def test_noise_level_is_drawn_per_image_from_the_range():
    options = DegradationOptions(noise=(0.01, 0.08))
    flat = torch.full((64, 1, 128, 128), 0.5)
    spread = degrade(flat, 4, "blur_noise", options, list(range(64))).std(dim=(1, 2, 3))
    assert 0.008 < float(spread.min()) and float(spread.max()) < 0.085
    assert float(spread.max()) - float(spread.min()) > 0.04


def test_seeded_draws_are_reproducible_and_do_not_depend_on_the_batch():
    hr = brain_batch(3)
    for kind in ("kspace_noise", "blur_noise", "random"):
        lr = degrade(hr, 4, kind, seeds=[5, 6, 7])
        assert torch.equal(lr, degrade(hr, 4, kind, seeds=[5, 6, 7]))
        # alone or in a batch: the same draws (the arithmetic of a batched convolution may round differently)
        torch.testing.assert_close(lr[1:2], degrade(hr[1:2], 4, kind, seeds=[6]), atol=1e-6, rtol=0)
        assert not torch.equal(lr, degrade(hr, 4, kind, seeds=[8, 9, 10]))
        torch.manual_seed(0)
        fresh = degrade(hr, 4, kind)
        assert not torch.equal(fresh, degrade(hr, 4, kind))  # training: new noise every call


def test_random_mixes_the_kinds_per_image():
    hr = brain_batch(48)
    seeds = list(range(100, 148))
    mixed = degrade(hr, 4, "random", seeds=seeds)
    kinds = DegradationOptions().kinds
    used = []
    for i, seed in enumerate(seeds):
        alone = {kind: degrade(hr[i:i + 1], 4, kind, seeds=[seed]) for kind in kinds}
        matches = [kind for kind in kinds if (mixed[i:i + 1] - alone[kind]).abs().max() < 1e-6]
        assert len(matches) == 1
        used += matches
    assert set(used) == set(kinds) and max(used.count(kind) for kind in kinds) < 24
    only = degrade(hr[:4], 4, "random", DegradationOptions(kinds=("kspace",)), seeds=seeds[:4])
    assert torch.equal(only, degrade(hr[:4], 4, "kspace"))


def test_noise_false_gives_the_noise_free_forward_model():
    hr = brain_batch(2)
    assert torch.equal(degrade(hr, 4, "kspace_noise", noise=False), degrade(hr, 4, "kspace"))
    assert torch.equal(degrade(hr, 4, "blur_noise", noise=False), gaussian_psf(hr, 4, 1.7).clamp(0, 1))
    assert torch.equal(degrade(hr, 4, "random", noise=False), degrade(hr, 4, "bicubic"))


@pytest.mark.parametrize(("options", "message"), [
    ({"window": "hamming"}, "data.degradation_options.window='hamming' is not one of none, hann, tukey"),
    ({"noise": -0.1}, r"data.degradation_options.noise=-0.1 must be a noise std in \[0, 1\)"),
    ({"noise": [0.05, 0.01]}, r"data.degradation_options.noise=\[0.05, 0.01\] must be .* 0 <= low <= high < 1"),
    ({"psf_sigma": 0}, "data.degradation_options.psf_sigma=0 must be a positive number"),
    ({"tukey_alpha": 2}, r"data.degradation_options.tukey_alpha=2 must be a number in \[0, 1\]"),
    ({"kinds": ["bicubic", "jpeg"]}, r"data.degradation_options.kinds=\['bicubic', 'jpeg'\] must be a non-empty"),
    ({"sigma": 0.1}, "data.degradation_options.sigma is not an option; the options are window, tukey_alpha"),
])
def test_bad_options_name_the_config_key(options, message):
    with pytest.raises(ValueError, match=message):
        data_module(source="kaggle", root="/data/never/read", degradation="kspace_noise", degradation_options=options)


def test_validation_lr_is_the_same_every_time_training_lr_is_fresh(kaggle_root, tmp_path):
    def datamodule():
        dm = data_module(source="kaggle", root=str(kaggle_root), cache_dir=str(tmp_path), batch_size=4,
                          degradation="kspace_noise", seed=3)
        dm.setup()
        return dm

    first, second = datamodule(), datamodule()
    raw = next(iter(first.val_dataloader()))
    lr = first.on_after_batch_transfer(dict(raw), 0)["lr"]
    assert torch.equal(lr, first.on_after_batch_transfer(dict(raw), 0)["lr"])
    assert torch.equal(lr, second.on_after_batch_transfer(next(iter(second.val_dataloader())), 0)["lr"])
    hr = raw["hr"].float() / 255
    torch.testing.assert_close(lr, degrade(hr, 4, "kspace_noise", seeds=sample_seeds(3, raw["index"])))
    assert not torch.equal(lr, degrade(hr, 4, "kspace_noise", seeds=sample_seeds(4, raw["index"])))
    # each image's index is its row in the cached data: no two images of any split share one
    indices = torch.cat([s.rows for s in (first.train_set, first.val_set, first.test_set)])
    assert len(indices.unique()) == len(indices)
    first.augmentation = Augmentation(flips=False)
    first.trainer = SimpleNamespace(training=True)
    torch.manual_seed(0)
    assert not torch.equal(first.on_after_batch_transfer(dict(raw), 0)["lr"],
                           first.on_after_batch_transfer(dict(raw), 0)["lr"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_seeded_lr_is_the_same_on_cpu_and_gpu():
    hr = brain_batch(4)
    for kind in DEGRADATIONS:
        scale = 1 if kind in THROUGH_PLANE_KINDS else 4
        cpu = degrade(hr, scale, kind, seeds=[1, 2, 3, 4])
        gpu = degrade(hr.cuda(), scale, kind, seeds=[1, 2, 3, 4])
        assert gpu.is_cuda
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)
