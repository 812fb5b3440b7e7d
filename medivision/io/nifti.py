"""NIfTI volumes in, in-plane super-resolved volumes out, with nibabel.

The one NIfTI reader: training's volume sources and enhance both read through read_unit.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medivision.io.intensity import IntensityMap

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_DESCRIP_BYTES = 80


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def read_nifti(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """The image and its voxel values [X, Y, Z] (trailing singleton dimensions dropped).

    Values are what nibabel gives: the stored integers when the file has no scaling, floats when it
    is float or has scl_slope/scl_inter. 2-D files count as one slice; 4-D series are refused.
    """
    try:
        image = nib.load(str(path))
        shape = image.shape
    except Exception as error:  # nibabel raises ImageFileError, OSError, EOFError, zlib errors ...
        raise ValueError(f"{path} cannot be read as NIfTI ({error}): is it a complete .nii/.nii.gz file?") from error
    if len(shape) > 3 and any(size > 1 for size in shape[3:]):
        raise ValueError(
            f"{path} is {len(shape)}-D with shape {shape}: give one 3-D volume per file "
            f"(split a series with nibabel.funcs.four_to_three or fslsplit)"
        )
    if len(shape) < 2:
        raise ValueError(f"{path} has shape {shape}: a NIfTI image needs at least two dimensions")
    try:
        data = np.asanyarray(image.dataobj)
    except Exception as error:  # a truncated data block fails only here
        raise ValueError(f"{path}: its voxel data cannot be read ({error}); is the file complete?") from error
    data = data.reshape(shape[:3] + (1,) * (3 - len(shape)))
    return image, data


def read_unit(path: Path, intensity: str = "minmax") -> tuple[nib.Nifti1Image, np.ndarray, IntensityMap]:
    """A NIfTI file as the network sees it: the image, its voxels as float32 [X, Y, Z] in [0, 1] (one intensity
    map for the whole volume, so slices stay comparable; see medivision.io.intensity) and that map."""
    image, data = read_nifti(path)
    mapping = IntensityMap.fit(data, intensity)
    return image, mapping.to_unit(data), mapping


def canonical(image: nib.Nifti1Image, volume: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    """`volume` (laid out as `image`'s voxels, [X, Y, Z]) reoriented to RAS+, nibabel's closest canonical, so
    that axes 0, 1, 2 run sagittal, coronal, axial whatever order the scanner stored; and the voxel size in
    mm along those axes."""
    orientation = nib.orientations.io_orientation(image.affine)
    zooms = np.asarray(image.header.get_zooms()[:3], dtype=np.float64)
    zooms = np.pad(zooms, (0, 3 - len(zooms)), constant_values=1.0)
    spacing = [0.0, 0.0, 0.0]
    for source_axis, (target_axis, _) in enumerate(orientation):
        spacing[int(target_axis)] = float(zooms[source_axis])
    return nib.orientations.apply_orientation(volume, orientation), tuple(spacing)


def to_slices(volume: np.ndarray, axis: int) -> np.ndarray:
    """[X, Y, Z] -> [N, 1, a, b]: the slices across `axis` (0, 1 or 2), in order."""
    return np.moveaxis(volume, axis, 0)[:, None]


def from_slices(slices: np.ndarray, axis: int) -> np.ndarray:
    """The inverse of to_slices: [N, 1, a, b] -> the volume with the N slices along `axis`."""
    return np.moveaxis(slices[:, 0], 0, axis)


# NIfTI-1 extension code 6: a free-text comment (nibabel calls it "comment"), which every reader can show.
COMMENT_EXTENSION = 6


def in_plane_grid(axis: int, scale: int) -> np.ndarray:
    """[4, 4]: new voxel index -> source voxel index for a grid `scale` times finer across the two axes other than
    `axis`: i' -> (i' + 0.5) / scale - 0.5, the same pixel centres as the network's upsampling."""
    to_source = np.eye(4)
    for in_plane in (a for a in range(3) if a != axis):
        to_source[in_plane, in_plane] = 1.0 / scale
        to_source[in_plane, 3] = -(scale - 1) / (2 * scale)
    return to_source


def slice_grid(axis: int, spacing: float, offset: float) -> np.ndarray:
    """[4, 4]: new voxel index -> source voxel index for a grid finer along the slice axis `axis` only, whose voxel
    i' lies at slice (i' - offset) / spacing (medivision.data.slice_profile): the acquired slices stay in place."""
    to_source = np.eye(4)
    to_source[axis, axis] = 1.0 / spacing
    to_source[axis, 3] = -offset / spacing
    return to_source


def derive(source: nib.Nifti1Image, volume: np.ndarray, to_source: np.ndarray, note: str) -> nib.Nifti1Image:
    """The SR volume as a NIfTI image of the source's class, on the finer grid that `to_source` ([4, 4], new voxel
    index -> source voxel index: in_plane_grid or slice_grid) describes.

    volume: values [X', Y', Z'] on that grid. The affine becomes the source's affine @ to_source, so zooms shrink
    and the volume stays in place. The qform and the sform are each refined that way from the source's own form
    and keep its code (the two may place the volume in different spaces, e.g. scanner and MNI coordinates). The
    on-disk dtype is kept (nibabel rescales float values into an integer dtype with scl_slope/scl_inter);
    cal_min/cal_max are the new volume's range; `descrip` says the volume is a model estimate, in as much of
    `note` as its 80 bytes hold, and a comment extension (NIfTI extension code 6) holds `note` whole, naming the
    model in full.
    """
    derived = type(source)(volume, source.affine @ to_source, header=source.header.copy())
    # Left alone, nibabel would mark the changed affine "aligned" (sform) and "unknown" (qform).
    derived.set_qform(source.header.get_qform() @ to_source, int(source.header["qform_code"]))
    derived.set_sform(source.header.get_sform() @ to_source, int(source.header["sform_code"]))
    derived.set_data_dtype(source.get_data_dtype())
    derived.header["cal_min"], derived.header["cal_max"] = float(volume.min()), float(volume.max())
    derived.header["descrip"] = note.encode("ascii", "replace")[:_DESCRIP_BYTES - 1]
    derived.header.extensions.append(nib.nifti1.Nifti1Extension(COMMENT_EXTENSION, note.encode("utf-8")))
    return derived


def write_nifti(path: Path, image: nib.Nifti1Image) -> None:
    nib.save(image, str(path))
