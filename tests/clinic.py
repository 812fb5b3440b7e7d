"""Helpers for the evaluate/enhance/export tests: composing configs, running enhance, writing DICOM and NIfTI."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from hydra import compose, initialize_config_dir
from nibabel.testing import data_path
from omegaconf import DictConfig
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medivision.data.slice_profile import SliceGeometry, acquire
from medivision.enhance import enhance
from medivision.io.run_summary import RunSummary
from tests.conftest import brain_like
from tests.training import CONF_DIR

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ANATOMICAL = Path(data_path) / "anatomical.nii"  # a real 2 mm T1 volume, 33 x 41 x 25, that ships with nibabel


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """medivision/conf/<name>.yaml composed with `overrides`, as `python -m medivision.<name>` would."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def run(checkpoint: Path, source: Path, output: Path, *extra: str) -> RunSummary:
    """`python -m medivision.enhance ckpt=checkpoint input=source output=output *extra`, in-process."""
    return enhance(compose_config("enhance", [f"ckpt={checkpoint}", f"input={source}", f"output={output}", *extra]))


def brain_slices(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Synthetic brain-like slices, float64 [count, height, width] in [0, 1]."""
    rng = np.random.default_rng(seed)
    return np.stack([brain_like(rng, width, height) for _ in range(count)]) / 255.0


def write_dicom_series(folder: Path, count: int = 3, size: tuple[int, int] = (24, 20), with_suffix: bool = True,
                       low: int = -200, high: int = 2800) -> list[Path]:
    """A real MR series: int16 MONOCHROME2 slices with Rescale Slope/Intercept, spacing and patient geometry.

    Stored values span [low, high]; the slices are 5 mm apart along an oblique normal.
    """
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    slices = brain_slices(count, *size, seed=3)
    paths = []
    for number, pixels in enumerate(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MR_IMAGE_STORAGE, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.Modality = "Test^Patient", "MV0001", "MR"
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "T1 axial", 3, count - number
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.PixelSpacing = [0.9, 0.8]
        ds.SliceThickness = 5.0
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0.8, -0.6]
        ds.ImagePositionPatient = [-100.0, -90.0 + 3.0 * number, 20.0 + 4.0 * number]
        ds.RescaleSlope, ds.RescaleIntercept = 0.5, -1024
        stored = np.rint(low + pixels * (high - low)).astype(np.int16)
        stored.flat[0], stored.flat[1] = low, high  # the series spans exactly [low, high]
        ds.set_pixel_data(stored, "MONOCHROME2", 16, generate_instance_uid=False)
        path = folder / (f"slice{number:03d}.dcm" if with_suffix else f"IM{number:04d}")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def oblique_affine(zooms: tuple[float, float, float] = (0.9, 0.8, 3.0)) -> np.ndarray:
    """A rotated, shifted voxel-to-world affine with the given voxel sizes (mm)."""
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(zooms)
    affine[:3, 3] = [-90.0, 12.5, -40.0]
    return affine


def write_volume(path: Path, shape: tuple[int, int, int] = (20, 24, 3), dtype=np.int16,
                 high: float = 3000.0) -> nib.Nifti1Image:
    """A NIfTI volume of brain-like slices along axis 2, values in [0, high], stored as `dtype`."""
    slices = brain_slices(shape[2], shape[0], shape[1], seed=5)
    data = (np.moveaxis(slices, 0, -1) * high).astype(dtype)
    image = nib.Nifti1Image(data, oblique_affine())
    image.header.set_xyzt_units("mm")
    nib.save(image, str(path))
    return image


def real_volume() -> np.ndarray:
    """nibabel's anatomical volume in [0, 1], float32 [33, 41, 25]."""
    values = np.asanyarray(nib.load(str(ANATOMICAL)).dataobj).astype(np.float32)
    return (values - values.min()) / (values.max() - values.min())


def thick_file(path: Path, factor: int = 4, thickness: float | None = None) -> tuple[Path, np.ndarray]:
    """nibabel's anatomical volume with `factor`x thicker slabs along y (rect profile), written as NIfTI with its
    spacing and an affine that keeps each slab's centre where it was; and the truth it was made from [33, n, 25]."""
    image = nib.load(str(ANATOMICAL))
    geometry = SliceGeometry(float(factor), float(thickness or factor))
    volume = real_volume()
    slices = geometry.slices(volume.shape[1])
    truth = volume[:, :geometry.pixels(slices)]
    thick = np.moveaxis(acquire(np.moveaxis(truth, 1, 0), geometry, slices), 0, 1)
    to_fine = np.eye(4)
    to_fine[1, 1], to_fine[1, 3] = factor, geometry.offset
    made = nib.Nifti1Image((thick * 1000).astype(np.int16), image.affine @ to_fine)
    made.header.set_zooms((2.0, 2.0 * factor, 2.0))
    nib.save(made, str(path))
    return path, truth
