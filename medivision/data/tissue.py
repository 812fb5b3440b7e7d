"""The tissue maps the synthetic-contrast source draws from, sliced like any volume and cached as uint8.

From the MNI152 2009 T1 template and its grey- and white-matter probability maps inside nilearn
(medivision.data.sources.tissue_files): CSF is the hole-filled brain mask minus GM and WM, where the brain
mask is GM + WM > 0.5, closed by CSF_CLOSING voxels (so sulci count as inside) and with its holes (the
ventricles) filled. Each cached item holds the four maps of one slice, channels TISSUES.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from medivision.data.decode import to_hr
from medivision.data.volumes import slice_volume
from medivision.io.nifti import canonical, read_nifti, read_unit

# The cached channels: the real T1 in [0, 1] (as data=mni152 reads it), then GM, WM, CSF probabilities.
TISSUES = ("t1", "gm", "wm", "csf")
# Closing of the GM + WM mask, in voxels (1 mm): wide enough to bridge sulci, narrow enough to keep the brain's
# outline.
CSF_CLOSING = 4


def tissue_volume(files: Sequence[Path]) -> tuple[np.ndarray, tuple[float, float, float]]:
    """float32 [X, Y, Z, 4] in [0, 1] in RAS+ orientation, channels TISSUES, and the voxel size in mm.

    files: the T1, GM and WM volumes on one grid (tissue_files()). The T1 is scaled by its own range (the
    minmax intensity policy, exactly as data=mni152 reads it); GM and WM are probabilities stored 0..255.
    """
    t1_path, gm_path, wm_path = files
    image, t1, _ = read_unit(t1_path, "minmax")
    gm, wm = (read_nifti(path)[1] / 255.0 for path in (gm_path, wm_path))
    matter = np.clip(gm + wm, 0.0, 1.0)
    mask = ndimage.binary_fill_holes(ndimage.binary_closing(matter > 0.5, iterations=CSF_CLOSING))
    csf = np.clip(mask - matter, 0.0, 1.0)
    volume = np.stack([t1, gm, wm, csf], axis=-1).astype(np.float32)
    return canonical(image, volume)


def build_tissue_maps(
    files: Sequence[Path], axes: Sequence[str], min_foreground: float, hr_size: int
) -> dict[str, Any]:
    """The cached form of medivision.data.build.load_source, with hr uint8 [N, 4, hr_size, hr_size] (TISSUES);
    the slices are the ones data=mni152 keeps with the same settings (the T1 channel decides foreground), and
    the class is the plane."""
    volume, spacing = tissue_volume(files)
    slices = slice_volume(volume, axes, min_foreground, spacing)
    hr = np.stack([np.stack([to_hr(image[..., c], hr_size) for c in range(len(TISSUES))]) for _, _, image in slices])
    return {
        "hr": torch.from_numpy(hr),
        "labels": torch.tensor([list(axes).index(plane) for plane, _, _ in slices], dtype=torch.int64),
        "splits": torch.full((len(slices),), -1, dtype=torch.int8),
        "slice_index": torch.tensor([index for _, index, _ in slices], dtype=torch.int64),
        "paths": [str(files[0])] * len(slices),
        "class_names": list(axes),
        "skipped": [],
        "skip_reasons": [],
        "num_files": len(files),
    }
