"""Tiling, back-projection and the intensity mapping, on real networks and real dtypes."""

import numpy as np
import pytest
import torch

from medivision.data.degradation_options import ForwardModel
from medivision.data.settings import data_module
from medivision.inference.consistency import lr_consistency_psnr, make_consistent
from medivision.inference.tiling import super_resolve
from medivision.io.intensity import IntensityMap
from medivision.nets import SRResNet
from tests.clinic import brain_slices


@pytest.fixture(scope="module")
def local_generator():
    """A random SRResNet without attention: every output pixel sees at most ~10 LR pixels around it."""
    torch.manual_seed(0)
    generator = SRResNet(channels=8, blocks=1, attention="none").eval()
    return lambda lr: generator(torch.from_numpy(lr)).detach().numpy()


def test_tiles_reproduce_the_whole_image_for_a_local_network(local_generator):
    lr = brain_slices(1, 130, 150).astype(np.float32)[:, None]
    whole = local_generator(lr)
    # overlap 48: outputs within 12 LR pixels of a tile's inner edge get no weight
    tiled = super_resolve(local_generator, lr, scale=4, tile=100, overlap=48)
    assert tiled.shape == whole.shape == (1, 1, 520, 600)
    assert np.abs(tiled - whole).max() < 1e-5
    # without a margin the seams show: the comparison above can fail
    seams = super_resolve(local_generator, lr, scale=4, tile=100, overlap=2)
    assert np.abs(seams - whole).max() > 1e-3


def test_channels_and_batches_go_through_one_by_one(local_generator):
    lr = np.random.default_rng(2).random((2, 3, 12, 10), dtype=np.float32)
    sr = super_resolve(local_generator, lr, scale=4, batch_size=4)
    assert sr.shape == (2, 3, 48, 40)
    assert np.allclose(sr[1, 2], local_generator(np.ascontiguousarray(lr[1:2, 2:3]))[0, 0], atol=1e-6)
    with pytest.raises(ValueError, match="tile=64 must exceed twice overlap=32"):
        super_resolve(local_generator, lr, scale=4, tile=64, overlap=32)


def test_back_projection_brings_degrade_sr_to_the_input():
    hr = brain_slices(2, 64, 64, seed=1).astype(np.float32)[:, None]
    forward = ForwardModel.of("bicubic")
    lr = forward.degrade(hr, 4)
    guess = np.clip(lr.repeat(4, -1).repeat(4, -2) + 0.05 * np.random.default_rng(3).standard_normal(hr.shape), 0, 1)
    corrected = make_consistent(guess, lr, 4, forward, iterations=20)
    before, after = lr_consistency_psnr(guess, lr, 4, forward), lr_consistency_psnr(corrected, lr, 4, forward)
    assert (after > before + 15).all() and (after > 40).all()
    assert corrected.min() >= 0 and corrected.max() <= 1
    # the correction moves only what LR measures: the guess's own detail stays
    assert np.abs(corrected - guess).mean() < np.abs(guess - hr).mean()


@pytest.mark.parametrize("values", [
    np.array([[0, 1, 2, 65535], [300, 4095, 17, 9]], dtype=np.uint16),
    np.array([[-1024, 3071], [0, 5]], dtype=np.int16),
    np.array([[0, 255], [17, 128]], dtype=np.uint8),
    np.array([[0.25, -3.5], [1e4, 7.0]], dtype=np.float32),
])
@pytest.mark.parametrize("mode", ["minmax", "dtype"])
def test_intensity_map_round_trips_exactly(values, mode):
    mapping = IntensityMap.fit(values, mode)
    unit = mapping.to_unit(values)
    assert unit.dtype == np.float32 and unit.min() >= 0 and unit.max() <= 1
    back = mapping.from_unit(unit)
    assert back.dtype == values.dtype
    if np.issubdtype(values.dtype, np.integer):
        assert np.array_equal(back, values)
    else:
        assert np.allclose(back, values, rtol=1e-6)


def test_intensity_minmax_fills_the_unit_range_and_stays_inside_the_data():
    twelve_bit = np.array([[100, 4000], [2000, 3000]], dtype=np.uint16)
    mapping = IntensityMap.fit(twelve_bit)
    assert mapping.to_unit(twelve_bit).min() == 0 and mapping.to_unit(twelve_bit).max() == 1
    assert mapping.from_unit(np.array([0.0, 0.5, 1.0])).tolist() == [100, 2050, 4000]
    assert IntensityMap.fit(twelve_bit, "dtype").to_unit(twelve_bit).max() == pytest.approx(4000 / 65535)
    with pytest.raises(ValueError, match="data.intensity='percentile' is not one of minmax, dtype"):
        data_module(source="mni152", intensity="percentile")  # policies are checked where the config enters
