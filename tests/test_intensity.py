"""One intensity policy from training to enhance: the same file gives the network the same [0, 1] array
through the training path (data sources) and through the enhance path, models record the policy they were
trained with, and nothing at the top of a range is clipped away."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from nibabel.testing import data_path
from PIL import Image

from medivision.data.decode import read_gray
from medivision.data.volumes import read_volume
from medivision.enhance import enhance
from medivision.evaluate import evaluate
from medivision.export import export
from medivision.inference.models import load_model
from medivision.io import images as image_files
from medivision.io import nifti as nifti_files
from medivision.io.intensity import IntensityMap
from medivision.train import train
from tests.clinic import compose_config
from tests.training import compose_train, tiny

ANATOMICAL = Path(data_path) / "anatomical.nii"  # a real 2 mm T1 volume that ships with nibabel


@pytest.fixture
def png16(tmp_path) -> tuple[Path, np.ndarray]:
    """A 16-bit PNG holding a 12-bit-like range (200..3800) with a few hot pixels at 65535."""
    rng = np.random.default_rng(3)
    values = rng.integers(200, 3800, size=(40, 56)).astype(np.uint16)
    values[5, 7] = values[30, 40] = 65535
    values[0, 0] = 200
    path = tmp_path / "scan16.png"
    Image.fromarray(values).save(path)
    return path, values


def test_a_16_bit_png_gives_the_same_unit_array_to_training_and_enhance(png16):
    path, values = png16
    expected = (values.astype(np.float64) - 200.0) / (65535.0 - 200.0)  # the documented minmax policy
    training = read_gray(path)
    enhancing, mapping = image_files.read_unit(path)
    assert training.dtype == enhancing.dtype == np.float32
    np.testing.assert_array_equal(training, enhancing[0])
    np.testing.assert_allclose(training, expected.astype(np.float32), rtol=0, atol=1e-7)
    assert training.max() == 1.0  # the hot pixels keep the top of the range: nothing above it is clipped
    np.testing.assert_array_equal(mapping.from_unit(enhancing), values[None])  # unchanged: exact stored values


def test_a_nifti_volume_gives_the_same_unit_array_to_training_and_enhance():
    stored = np.asarray(nib.load(str(ANATOMICAL)).dataobj).astype(np.float64)
    low, high = stored.min(), stored.max()
    training, spacing = read_volume(ANATOMICAL)
    image, enhancing, mapping = nifti_files.read_unit(ANATOMICAL)
    np.testing.assert_array_equal(training, nifti_files.canonical(image, enhancing)[0])
    np.testing.assert_allclose(enhancing, (stored.reshape(enhancing.shape) - low) / (high - low), atol=1e-6)
    assert spacing == (2.0, 2.0, 2.0) and training.max() == 1.0 and training.min() == 0.0
    canonical = nib.as_closest_canonical(nib.load(str(ANATOMICAL)))
    assert training.shape == canonical.shape[:3]  # reoriented as nibabel's closest canonical (RAS+)


def test_dtype_policy_uses_the_integer_range_in_both_paths(png16):
    path, values = png16
    np.testing.assert_array_equal(read_gray(path, "dtype"), image_files.read_unit(path, "dtype")[0][0])
    assert read_gray(path, "dtype").max() == 1.0 and read_gray(path, "dtype").min() == pytest.approx(200 / 65535)


def test_the_top_of_the_range_survives_enhance(png16, tiny_checkpoint, tmp_path):
    path, values = png16
    out = tmp_path / "sr.png"
    enhance(compose_config("enhance", [f"ckpt={tiny_checkpoint}", f"input={path}", f"output={out}"]))
    with Image.open(out) as image:
        written = np.asarray(image)
        assert image.text["Intensity"].startswith("value = 200 + unit * 65335 (uint16)")
    assert written.dtype == np.uint16 and written.min() >= 200
    # a mapping fitted on the input sends the network's full range back to the input's full range
    assert IntensityMap.fit(values).from_unit(np.array([0.0, 1.0])).tolist() == [200, 65535]


@pytest.fixture(scope="module")
def dtype_checkpoint(kaggle_root, tmp_path_factory) -> Path:
    """A tiny model trained on data read with the dtype policy."""
    out = tmp_path_factory.mktemp("dtype_run")
    train(compose_train(tiny(kaggle_root, out, "data.intensity=dtype", "model.pretrain_epochs=1", "logger=none",
                             "test=false")))
    return out / "checkpoints" / "last.ckpt"


def test_checkpoints_and_exports_carry_the_policy_and_evaluate_refuses_another(dtype_checkpoint, kaggle_root,
                                                                               tmp_path):
    assert load_model(dtype_checkpoint).intensity == "dtype"
    onnx = tmp_path / "model.onnx"
    export(compose_config("export", [f"ckpt={dtype_checkpoint}", f"output={onnx}"]))
    assert load_model(onnx).intensity == "dtype"
    for ckpt in (dtype_checkpoint, onnx):
        cfg = compose_config("evaluate", [f"ckpt={ckpt}", f"data.root={kaggle_root}",
                                          f"data.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path}"])
        with pytest.raises(ValueError, match="trained on data mapped to \\[0, 1\\] by the dtype policy, but "
                                             "data.intensity=minmax: pass data.intensity=dtype"):
            evaluate(cfg)


def test_a_checkpoint_from_before_the_policy_was_recorded_reads_images_by_their_dtype(tiny_checkpoint, tmp_path):
    assert load_model(tiny_checkpoint).intensity == "minmax"  # the default policy, recorded
    checkpoint = torch.load(tiny_checkpoint, weights_only=True)
    del checkpoint["hyper_parameters"]["intensity"]
    torch.save(checkpoint, tmp_path / "old.ckpt")
    assert load_model(tmp_path / "old.ckpt").intensity == "dtype"  # what training did then: /255, /65535


def test_reorientation_carries_anisotropic_voxel_sizes(tmp_path):
    data = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    # array axes stored as superior, right-to-left and anterior, with 2, 3 and 1.5 mm voxels
    permuted = np.array([[0, 0, 2.0, 0], [-3.0, 0, 0, 0], [0, 1.5, 0, 0], [0, 0, 0, 1]])
    path = tmp_path / "oblique.nii.gz"
    nib.save(nib.Nifti1Image(data, permuted), str(path))
    volume, spacing = read_volume(path)
    reference = nib.as_closest_canonical(nib.load(str(path)))
    np.testing.assert_allclose(volume, (np.asarray(reference.dataobj) - data.min()) / (data.max() - data.min()),
                               atol=1e-6)
    assert spacing == tuple(float(z) for z in reference.header.get_zooms()) == (2.0, 3.0, 1.5)
