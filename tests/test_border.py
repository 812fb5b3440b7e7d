"""No dark frame: the border rows and columns of the bundled model's output are as bright as bicubic's, on a flat
field and on a real slice (pydicom's MR_small.dcm); the same network without the served margin shows the frame
that its convolutions' zero padding draws."""

import torch
from pydicom.data import get_testdata_file

from medivision.data.degradations import upsample_bicubic
from medivision.inference.checkpoints import load_generator
from medivision.inference.model_file import bundled_model_path
from medivision.inference.models import load_model
from medivision.io.dicom import read_dicom
from medivision.io.intensity import IntensityMap


def border_means(image: torch.Tensor) -> torch.Tensor:
    """float [4]: the mean of the top and bottom rows and the left and right columns of image [1, 1, H, W]."""
    plane = image[0, 0]
    return torch.stack([plane[0].mean(), plane[-1].mean(), plane[:, 0].mean(), plane[:, -1].mean()])


def bundled_network_without_margin() -> torch.nn.Module:
    return load_generator(bundled_model_path(".safetensors")).network


def served(lr: torch.Tensor) -> torch.Tensor:
    """The bundled model as enhance runs it (ONNX Runtime)."""
    return torch.from_numpy(load_model(None)(lr.numpy()))


@torch.inference_mode()
def test_a_flat_field_stays_flat_to_the_border():
    lr = torch.full((1, 1, 32, 32), 0.7)
    field = border_means(served(lr)) - 0.7
    assert field.min() > -0.01 and field.abs().max() < 0.02  # no border darker, none off by 2% of the field
    bare = border_means(bundled_network_without_margin()(lr).clamp(0, 1)) - 0.7
    assert bare.min() < -0.03  # the frame the margin removes


@torch.inference_mode()
def test_a_real_slice_keeps_its_border_brightness():
    _, values = read_dicom(get_testdata_file("MR_small.dcm", download=False))  # a real 64x64 MR slice
    lr = torch.from_numpy(IntensityMap.fit(values, "minmax").to_unit(values)).float().view(1, 1, *values.shape[-2:])
    bicubic = border_means(upsample_bicubic(lr, 4))
    borders = border_means(served(lr))
    assert ((borders - bicubic).abs() / bicubic).max() < 0.03, (borders, bicubic)
    bare = border_means(bundled_network_without_margin()(lr).clamp(0, 1))
    assert (bare < 0.95 * bicubic).sum() >= 2  # the frame the margin removes: darker on at least two sides
