"""A single-frame DICOM series read as one volume, with its geometry as a NIfTI image (RAS+ world coordinates), for
the through-plane mode: its slices ordered along their normal, equally spaced, their Slice Thickness kept."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medivision.io.dicom import read_dicom

# Slice positions may differ from equal spacing by this fraction of the spacing (rounding in the headers).
SPACING_TOLERANCE = 0.01
# DICOM's patient coordinates are LPS; NIfTI's world is RAS.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def read_series_volume(paths: list[Path]) -> tuple[nib.Nifti1Image, float | None]:
    """The series of `paths` as a float32 NIfTI image [rows, columns, slices] in the modality's units (Rescale
    Slope/Intercept applied), its affine from Image Position/Orientation (Patient) and Pixel Spacing; and its
    Slice Thickness in mm (None where the files do not say). ValueError naming the series and the fix for a series
    of one slice, of frames or colour, of mixed sizes or orientations, or whose slices are not equally spaced."""
    name = f"the DICOM series of {paths[0].parent}" if len(paths) > 1 else str(paths[0])
    slices = [_slice(path) for path in paths]
    if len(slices) < 2:
        raise ValueError(f"{name} holds one slice: through_plane=true needs a series of several slices")
    first = slices[0][0]
    orientation = np.array([float(v) for v in first.ImageOrientationPatient])
    if any(s[0].Rows != first.Rows or s[0].Columns != first.Columns or not np.allclose(
            [float(v) for v in s[0].ImageOrientationPatient], orientation, atol=1e-4) for s in slices):
        raise ValueError(f"{name} mixes image sizes or orientations: give one stack of parallel slices")
    normal = np.cross(orientation[:3], orientation[3:])
    slices.sort(key=lambda s: float(np.dot(s[1], normal)))
    positions = np.array([s[1] for s in slices])
    gaps = np.diff(positions @ normal)
    if gaps.min() <= 0 or gaps.max() - gaps.min() > SPACING_TOLERANCE * np.median(gaps):
        raise ValueError(f"{name}: its slices are not equally spaced ({gaps.min():g} to {gaps.max():g} mm apart): "
                         "through_plane=true needs equally spaced slices; split the series where the spacing "
                         "changes or resample it")
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    affine = np.eye(4)
    affine[:3, 0] = row_spacing * orientation[3:]  # down the rows: the column direction cosines
    affine[:3, 1] = column_spacing * orientation[:3]
    affine[:3, 2] = (positions[-1] - positions[0]) / (len(positions) - 1)
    affine[:3, 3] = positions[0]
    volume = np.stack([values for _, _, values in slices], axis=2)
    image = nib.Nifti1Image(volume, LPS_TO_RAS @ affine)
    image.set_qform(LPS_TO_RAS @ affine, code=1)  # scanner coordinates
    image.set_sform(LPS_TO_RAS @ affine, code=1)
    thickness = first.get("SliceThickness")
    return image, float(thickness) if thickness else None


def _slice(path: Path) -> tuple:
    """(dataset, Image Position (Patient) [3], values float32 [rows, columns]) of one single-frame grayscale file."""
    dataset, stored = read_dicom(path)
    if stored.shape[:2] != (1, 1):
        raise ValueError(f"{path} holds {stored.shape[0]} frames of {stored.shape[1]} channels: through_plane=true "
                         "reads series of single-frame grayscale slices")
    if "ImagePositionPatient" not in dataset or "ImageOrientationPatient" not in dataset or "PixelSpacing" not in (
            dataset):
        raise ValueError(f"{path} lacks Image Position/Orientation (Patient) or Pixel Spacing: without them its "
                         "slices cannot be placed in a volume")
    slope, intercept = float(dataset.get("RescaleSlope", 1) or 1), float(dataset.get("RescaleIntercept", 0) or 0)
    values = stored[0, 0].astype(np.float32) * slope + intercept
    return dataset, np.array([float(v) for v in dataset.ImagePositionPatient]), values
