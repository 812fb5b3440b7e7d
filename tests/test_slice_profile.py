"""Slice profiles along one axis, the `slices` degradation and the scale-1 generator that refines its output."""

import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates

from medivision.data.degradation_options import DegradationOptions
from medivision.data.degradations import degrade, sample_seeds
from medivision.data.options import option_problems
from medivision.data.settings import data_module
from medivision.data.slice_profile import SliceGeometry, interpolation_matrix, profile_matrix
from medivision.inference.through_plane import interpolate
from medivision.nets import SRResNet


@pytest.mark.parametrize("geometry", [SliceGeometry(4.0, 4.0), SliceGeometry(4.6, 3.5), SliceGeometry(2.0, 2.0,
                                                                                                       "gaussian")])
@pytest.mark.parametrize("order", [1, 3])
def test_interpolation_is_scipys_spline_between_the_slice_centres(geometry, order):
    slices = 11
    pixels = geometry.pixels(slices)
    values = np.random.default_rng(0).random(slices)
    where = (np.arange(pixels) - geometry.offset) / geometry.spacing
    expected = map_coordinates(values, [where], order=order, mode="mirror")
    np.testing.assert_allclose(interpolation_matrix(geometry, pixels, slices, order) @ values, expected, atol=1e-12)


def test_rect_slabs_average_exactly_the_pixels_they_cover():
    matrix = profile_matrix(SliceGeometry(2.5, 2.5), 10, 4)
    np.testing.assert_allclose(matrix[0], [0.4, 0.4, 0.2, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(matrix[1], [0, 0, 0.2, 0.4, 0.4, 0, 0, 0, 0, 0])
    gapped = profile_matrix(SliceGeometry(4.0, 2.0), 12, 3)  # 2-pixel slabs with 2-pixel gaps
    np.testing.assert_allclose(gapped, np.kron(np.eye(3), [0.5, 0.5, 0, 0]))


def test_gaussian_slabs_have_the_thickness_as_full_width_at_half_maximum():
    row = profile_matrix(SliceGeometry(8.0, 4.0, "gaussian"), 40, 4)[1]  # slab 1 is centred at 1.5 + 8 = 9.5
    assert row[9] == pytest.approx(row[10])
    sigma = 4.0 / (2 * np.sqrt(2 * np.log(2)))  # the std whose full width at half maximum is 4
    assert row[11] / row[10] == pytest.approx(np.exp(-(1.5**2 - 0.5**2) / (2 * sigma**2)))
    np.testing.assert_allclose(profile_matrix(SliceGeometry(8.0, 4.0, "gaussian"), 40, 4).sum(1), 1.0)


def test_geometry_counts_slabs_and_pixels():
    geometry = SliceGeometry(4.0, 3.0)
    assert geometry.slices(40) == 10 and geometry.pixels(10) == 39  # the last gap is not part of the output
    assert geometry.covering(40) == 10 and SliceGeometry(3.0, 3.0).covering(40) == 14
    with pytest.raises(ValueError, match="at most the spacing"):
        SliceGeometry(3.0, 4.0)
    with pytest.raises(ValueError, match="slice profile 'box'"):
        SliceGeometry(3.0, 3.0, "box")


def test_slices_degradation_keeps_the_grid_and_blurs_only_the_rows():
    hr = torch.rand(6, 1, 64, 48)
    seeds = sample_seeds(5, torch.arange(6))
    lr = degrade(hr, 1, "slices", seeds=seeds)
    assert lr.shape == hr.shape and torch.isfinite(lr).all() and lr.min() >= 0 and lr.max() <= 1
    assert torch.equal(lr, degrade(hr, 1, "slices", seeds=seeds))  # seeded: the same on every run
    # each column is mapped on its own: a constant column stays constant, and rows are mixed, not columns
    flat = torch.ones(6, 1, 64, 48) * torch.linspace(0, 1, 48)
    torch.testing.assert_close(degrade(flat, 1, "slices", seeds=seeds), flat, atol=1e-5, rtol=0)
    assert (lr - hr).abs().mean() > 0.05
    # the geometries differ between images: the same image degrades differently under different seeds
    same = hr[:1].expand(6, -1, -1, -1)
    outputs = degrade(same, 1, "slices", seeds=seeds)
    assert len({round(float(o.sum()), 3) for o in outputs}) > 1


def test_training_degrades_exactly_as_inference_builds_its_input():
    hr = torch.rand(2, 1, 40, 24, dtype=torch.float64)
    options = DegradationOptions(slice_factor=(4.0, 4.0), slice_gap=(0.0, 0.0), slice_profiles=("rect",))
    geometry = SliceGeometry(4.0, 4.0)
    acquired = np.tensordot(profile_matrix(geometry, 40, 10), hr.numpy()[:, 0], axes=(1, 1))  # [10, B, 24]
    start = np.moveaxis(interpolate(acquired, geometry), 1, 0)  # the through-plane pipeline's input, [B, 40, 24]
    trained = degrade(hr, 1, "slices", options, seeds=[1, 2])[:, 0].numpy()
    np.testing.assert_allclose(trained, np.clip(start, 0, 1), atol=1e-6)


def test_slices_and_only_slices_keep_the_hr_grid():
    with pytest.raises(ValueError, match="data.degradation=slices with data.scale=4: .* keep the HR grid"):
        data_module(source="mni152", degradation="slices", scale=4)
    with pytest.raises(ValueError, match="data.degradation=bicubic with data.scale=1"):
        data_module(source="mni152", degradation="bicubic", scale=1)


def test_slices_options_are_checked():
    fine = {"slice_factor": [2, 6], "slice_gap": 0.2, "slice_profiles": ["rect"]}
    assert option_problems(fine, DegradationOptions) == []
    problems = option_problems({"slice_factor": [2, 12], "slice_profiles": ["box"], "slice_gap": [0.5, 0.1]},
                               DegradationOptions)
    assert len(problems) == 3 and "slice_factor" in problems[0]
    options = DegradationOptions.from_config({"slice_factor": 3})
    assert options.slice_factor == (3.0, 3.0)


def test_scale_one_generator_refines_on_the_input_grid():
    generator = SRResNet(channels=8, blocks=1, scale=1, reduction=4)
    image = torch.rand(2, 1, 20, 12)
    assert generator(image).shape == image.shape
    for parameter in generator.tail.parameters():
        torch.nn.init.zeros_(parameter)
    torch.testing.assert_close(generator(image), image)  # the skip is the identity at scale 1
