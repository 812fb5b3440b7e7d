"""The real-scan benchmark (`data=real_scans`): held-out slices of real brain scans of other people that ship
inside installed packages, each with its true HR. A test split only: never trained on.

Groups (the classes) and their files:
  t1       dipy's t1_coronal_slice.npy (a coronal T1 slice, 256x256) and matplotlib's s1045.ima.gz (a sagittal
           T1 head slice with skull and face, 256x256 big-endian uint16)
  b0       dipy's S0_10slices.nii.gz (diffusion b0, 10 axial slices of 128x128)
  low_snr  dipy's test_piesno.nii.gz (a low-SNR acquisition, axial slices of 96x96)
  epi      nibabel's example4d.nii.gz (a BOLD EPI volume: its first frame, axial slices of 128x96)

Each file is mapped to [0, 1] by the intensity policy (one map per file, as enhance reads it), cut into axial
slices (those with more than `min_foreground` of their pixels above FOREGROUND_LEVEL), cropped to its centred
square (nothing is padded in: the background stays the scan's own) and resized to the HR size. LR is made from
that HR by each kind of REAL_SCAN_LR; the benchmark reports both. The low_snr and epi slices are 96 pixels
across, so their 128x128 HR is itself interpolated (a little smoother than a scan at that size would be): the
LR is 3x, not 4x, coarser than what was acquired there.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import nibabel as nib
import numpy as np
import torch

from medivision.data.decode import skip_reason, to_hr
from medivision.data.sources import DataError
from medivision.data.splits import TEST
from medivision.data.volumes import FOREGROUND_LEVEL
from medivision.io.intensity import IntensityMap
from medivision.io.nifti import canonical

REAL_SCAN_GROUPS = ("t1", "b0", "low_snr", "epi")
# The LR kinds the benchmark reports: the research protocol's bicubic, and a 4x coarser acquisition.
REAL_SCAN_LR = ("bicubic", "kspace")
# The package extra that installs every package the benchmark reads from.
EXTRA = "demo"


class RealScan(NamedTuple):
    """One file of the benchmark: its group, the package it ships in, and its path inside that package."""

    group: str
    package: str
    relative: str


REAL_SCANS = (
    RealScan("t1", "dipy", "data/files/t1_coronal_slice.npy"),
    RealScan("t1", "matplotlib", "mpl-data/sample_data/s1045.ima.gz"),
    RealScan("b0", "dipy", "data/files/S0_10slices.nii.gz"),
    RealScan("low_snr", "dipy", "data/files/test_piesno.nii.gz"),
    RealScan("epi", "nibabel", "tests/data/example4d.nii.gz"),
)


def real_scan_files(scans: Sequence[RealScan] = REAL_SCANS) -> list[tuple[str, Path]]:
    """(group, path) of every benchmark file, found through the installed packages (nothing is downloaded).

    Raises DataError naming the package and the extra that installs it when a package is missing; a file
    missing from an installed package is listed all the same (its build skips and counts it).
    """
    return [(scan.group, package_file(scan.package, scan.relative, "data=real_scans")) for scan in scans]


def package_file(package: str, relative: str, needed_by: str) -> Path:
    """The path of a file that ships inside an installed package (it may be missing from it). DataError naming the
    package, what needs it, and the extra that installs it when the package is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"{needed_by} needs the package {package}: pip install -e '.[{EXTRA}]'")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def build_real_scans(files: Sequence[tuple[str, Path]], min_foreground: float, hr_size: int,
                     intensity: str = "minmax") -> dict[str, Any]:
    """The cached form of medivision.data.build.load_source: every slice in the source's test split, the class
    its group (REAL_SCAN_GROUPS). A file that cannot be read is skipped with its reason."""
    hr, labels, slice_index, paths, skipped = [], [], [], [], []
    for group, path in files:
        try:
            slices = list(np.moveaxis(_read_unit(path, intensity), 2, 0))  # the axial slices
        except Exception as error:  # numpy, gzip and nibabel raise OSError, EOFError, zlib and ImageFileError ...
            skipped.append((str(path), skip_reason(error)))
            continue
        for index, image in enumerate(slices):
            if (image > FOREGROUND_LEVEL).mean() > min_foreground:
                hr.append(to_hr(_centre_square(image), hr_size))
                labels.append(REAL_SCAN_GROUPS.index(group))
                slice_index.append(index if len(slices) > 1 else -1)
                paths.append(str(path))
    if not hr and skipped:
        raise DataError(f"no file of the real-scan benchmark could be read, e.g. {skipped[0][0]} ({skipped[0][1]}): "
                        f"reinstall with pip install -e '.[{EXTRA}]'")
    if not hr:
        raise DataError(f"no slice of the real-scan benchmark has more than data.min_foreground={min_foreground} "
                        f"foreground: lower data.min_foreground")
    return {
        "hr": torch.from_numpy(np.stack(hr)).unsqueeze(1),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "splits": torch.full((len(hr),), TEST, dtype=torch.int8),  # the source's test split
        "slice_index": torch.tensor(slice_index, dtype=torch.int64),
        "paths": paths,
        "class_names": list(REAL_SCAN_GROUPS),
        "skipped": [path for path, _ in skipped],
        "skip_reasons": [reason for _, reason in skipped],
        "num_files": len(files),
    }


def _read_unit(path: Path, intensity: str) -> np.ndarray:
    """float32 [X, Y, Z] in [0, 1] (RAS+ for NIfTI; a 2-D file is one slice), by the intensity policy from the
    stored values."""
    reader: Callable[[Path], np.ndarray] = _READERS.get(path.name.split(".", 1)[1], _nifti)
    values = reader(path)
    return IntensityMap.fit(values, intensity).to_unit(values).astype(np.float32)


def _npy(path: Path) -> np.ndarray:
    """dipy's coronal T1 slice, [256, 256] float, stored as displayed (rows top to bottom)."""
    return np.load(path, allow_pickle=False)[:, :, None]


def _ima(path: Path) -> np.ndarray:
    """matplotlib's s1045.ima.gz: a 256x256 big-endian uint16 slice, rows top to bottom (as uint16)."""
    values = np.frombuffer(gzip.open(path).read(), dtype=">u2")
    if values.size != 256 * 256:
        raise ValueError(f"{path} holds {values.size} values, not a 256x256 slice")
    return values.reshape(256, 256).astype(np.uint16)[:, :, None]


def _nifti(path: Path) -> np.ndarray:
    """A NIfTI volume's first frame in RAS+ orientation, [X, Y, Z], turned so that each axial slice shows anterior
    up; its stored dtype when the file has no scaling (so the `dtype` policy sees it, as enhance does)."""
    image = nib.load(str(path))
    data = np.asanyarray(image.dataobj)
    data = data.reshape(*data.shape[:3], -1)[..., 0] if data.ndim > 3 else data
    return np.rot90(canonical(image, data)[0], 1, axes=(0, 1))


_READERS: dict[str, Callable[[Path], np.ndarray]] = {"npy": _npy, "ima.gz": _ima}


def _centre_square(image: np.ndarray) -> np.ndarray:
    """The centred square of side min(H, W): the scan's own pixels, no padding."""
    height, width = image.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top : top + side, left : left + side]
