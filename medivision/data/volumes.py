"""Slice 3-D NIfTI volumes into 2-D HR images, one class per anatomical plane."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from medivision.data.decode import map_with_progress, skip_reason, to_hr
from medivision.io.nifti import canonical, read_unit

# Array axes 0, 1, 2 of a volume in RAS+ orientation (nibabel's closest canonical).
PLANES = ("sagittal", "coronal", "axial")

# A voxel counts as foreground above this fraction of the volume's range (in [0, 1]).
FOREGROUND_LEVEL = 0.05


class VolumeSlices(NamedTuple):
    hr: np.ndarray  # uint8 [N, size, size]
    planes: list[str]  # plane of each slice
    slice_index: list[int]  # position of each slice along its plane's axis
    volume: list[int]  # index into the decoded file list


def read_volume(path: str | Path, intensity: str = "minmax") -> tuple[np.ndarray, tuple[float, float, float]]:
    """A NIfTI volume as a training volume: float32 [X, Y, Z] in [0, 1] in RAS+ orientation, and its voxel
    size in mm along X, Y, Z.

    Read by the one NIfTI reader and mapped to [0, 1] by the intensity policy, one map for the whole volume
    (medivision.io.nifti.read_unit, medivision.io.intensity), exactly as enhance reads it; then reoriented
    so that axes 0/1/2 are sagittal/coronal/axial whatever order the scanner stored.
    """
    image, unit, _ = read_unit(Path(path), intensity)
    return canonical(image, unit)


def slice_volume(
    volume: np.ndarray,
    axes: Sequence[str],
    min_foreground: float,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> list[tuple[str, int, np.ndarray]]:
    """Cut a volume into 2-D slices along the given planes, dropping nearly empty ones.

    volume: float [X, Y, Z] in [0, 1], RAS+; or [X, Y, Z, C], C maps on one grid (tissue maps), whose first
    channel decides what is foreground. The volume is first cropped to the bounding box of its
    foreground (plus a small margin) so the head fills the HR frame rather than the scanner's empty
    field of view. Returns (plane, index in the uncropped volume, float [rows, cols] (or [rows, cols, C])
    in [0, 1]) for every slice whose fraction of foreground voxels (within the box) exceeds
    `min_foreground`; the edge slices that only graze the head are dropped. Slices are rotated so superior
    (or anterior, for axial) is up, and resampled to square pixels when the voxels (`spacing`, mm) are not
    cubes.
    """
    first = volume if volume.ndim == 3 else volume[..., 0]
    box = _foreground_box(first > FOREGROUND_LEVEL, margin=2)
    volume = volume[box]
    foreground = first[box] > FOREGROUND_LEVEL
    slices = []
    for plane in axes:
        axis = PLANES.index(plane)
        other = tuple(a for a in range(3) if a != axis)
        fractions = foreground.mean(axis=other)
        stack = np.moveaxis(volume, axis, 0)
        # After rot90, rows run along the second remaining axis and columns along the first.
        row_mm, column_mm = spacing[other[1]], spacing[other[0]]
        for index in np.flatnonzero(fractions > min_foreground):
            image = _square_pixels(np.rot90(stack[index]), row_mm, column_mm)
            slices.append((plane, int(index) + box[axis].start, image))
    return slices


def _square_pixels(image: np.ndarray, row_mm: float, column_mm: float) -> np.ndarray:
    """Resample float [rows, cols] (or [rows, cols, C], each channel alike) so both pixel sides equal the finer
    of the two spacings (mm).

    Without this, slices across a thick-slice volume come out squashed along the slice direction.
    """
    if np.isclose(row_mm, column_mm):
        return image
    if image.ndim == 3:
        return np.stack([_square_pixels(image[..., c], row_mm, column_mm) for c in range(image.shape[2])], -1)
    finest = min(row_mm, column_mm)
    width = round(image.shape[1] * column_mm / finest)
    height = round(image.shape[0] * row_mm / finest)
    resized = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    return np.clip(np.asarray(resized), 0.0, 1.0)


def _foreground_box(foreground: np.ndarray, margin: int) -> tuple[slice, ...]:
    box = []
    for axis in range(foreground.ndim):
        present = np.flatnonzero(foreground.any(axis=tuple(a for a in range(foreground.ndim) if a != axis)))
        start, stop = (present[0], present[-1] + 1) if present.size else (0, foreground.shape[axis])
        box.append(slice(max(0, start - margin), min(foreground.shape[axis], stop + margin)))
    return tuple(box)


def decode_volumes(
    files: Sequence[Path], axes: Sequence[str], min_foreground: float, size: int = 128, intensity: str = "minmax"
) -> tuple[VolumeSlices, list[tuple[str, str]]]:
    """Slice every volume into HR images, skipping files that cannot be read (corrupt, 4-D, not NIfTI).

    Returns (the slices, [(path, reason)] for each skipped file).
    """

    def decode_one(path: Path) -> list[tuple[str, int, np.ndarray]] | str:
        try:
            volume, spacing = read_volume(path, intensity)
        except Exception as err:  # a corrupt or 4-D volume is skipped, not fatal
            return skip_reason(err)
        slices = slice_volume(volume, axes, min_foreground, spacing)
        return [(plane, index, to_hr(image, size)) for plane, index, image in slices]

    results = map_with_progress(decode_one, files, "volumes")
    hr, planes, slice_index, volume = [], [], [], []
    failed = []
    for number, (path, result) in enumerate(zip(files, results)):
        if isinstance(result, str):
            failed.append((str(path), result))
            continue
        for plane, index, image in result:
            hr.append(image)
            planes.append(plane)
            slice_index.append(index)
            volume.append(number)
    stacked = np.stack(hr) if hr else np.zeros((0, size, size), dtype=np.uint8)
    return VolumeSlices(stacked, planes, slice_index, volume), failed
