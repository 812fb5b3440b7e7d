"""The thick-slice benchmark's volumes: real, about isotropic brain volumes that ship inside installed packages,
from which thick slices are simulated along one axis and compared with the truth. Never trained on (the general
models train on data=synth; see each volume's note for what that does and does not cover)."""

from __future__ import annotations

from typing import NamedTuple

import nibabel as nib
import numpy as np

from medivision.data.real_scans import package_file
from medivision.io.intensity import IntensityMap


class IsotropicVolume(NamedTuple):
    """One benchmark volume: its name, where it ships, the array axis thick slices are simulated along, and what
    it is."""

    name: str
    package: str
    relative: str
    axis: int
    note: str


ISOTROPIC_VOLUMES = (
    IsotropicVolume("epi", "nibabel", "tests/data/example4d.nii.gz", 1,
                    "nibabel's BOLD EPI volume (first frame), 128 x 96 x 24 at 2 x 2 x 2.2 mm: a real scan of a "
                    "person, thick slices simulated coronally (along y)"),
    IsotropicVolume("anatomical", "nibabel", "tests/data/anatomical.nii", 1,
                    "nibabel's anatomical volume, 33 x 41 x 25 at 2 mm: a real, small structural scan, thick slices "
                    "simulated along y"),
    IsotropicVolume("mni152", "nilearn", "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz", 2,
                    "the MNI152 2009 T1 template, 197 x 233 x 189 at 1 mm, thick axial slices: an average of 152 "
                    "brains, smoother than a scan, and the anatomy data=synth draws its training contrasts from: "
                    "a check, not evidence"),
)
VOLUME_NAMES = tuple(volume.name for volume in ISOTROPIC_VOLUMES)
# The volumes whose anatomy the general models train on: reported, but no evidence and not part of the gate.
TRAINING_ANATOMY = ("mni152",)


def read_volume(volume: IsotropicVolume, intensity: str = "minmax") -> tuple[np.ndarray, tuple[float, ...]]:
    """The volume (its first frame) as float32 [X, Y, Z] in [0, 1] by the intensity policy, and its voxel spacing
    in mm."""
    image = nib.load(str(package_file(volume.package, volume.relative, "the thick-slice benchmark")))
    data = np.asanyarray(image.dataobj)
    data = data.reshape(*data.shape[:3], -1)[..., 0] if data.ndim > 3 else data
    return IntensityMap.fit(data, intensity).to_unit(data), tuple(float(z) for z in image.header.get_zooms()[:3])
