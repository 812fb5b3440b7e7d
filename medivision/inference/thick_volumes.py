"""enhance's through-plane mode (through_plane=true): thick-slice NIfTI volumes and DICOM series in, NIfTI volumes
out whose slice axis has the in-plane spacing.

Each volume (a NIfTI file, or a DICOM series read as one by medivision.io.dicom_volume) is mapped to [0, 1] with
one intensity map; its slice axis and geometry come from its voxel spacing
(medivision.inference.through_plane.slice_axis); the model is adapted to it if asked (medivision.inference.adapt,
PyTorch); and the result is written on a grid that keeps the acquired slices where they were
(medivision.io.nifti.slice_grid), labelled as a model estimate. With uncertainty=true the disagreement of the two
through-plane orientations is written beside it. Where the two in-plane spacings differ, the slice axis gets the
finer one.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from tqdm import tqdm

from medivision.data.degradation_options import THROUGH_PLANE_KINDS
from medivision.data.slice_profile import SliceGeometry
from medivision.inference.models import SRModel, has_torch
from medivision.inference.pipeline import Processed
from medivision.inference.through_plane import ThroughPlane, slice_axis
from medivision.io import nifti as nifti_files
from medivision.io.dicom import integer, sort_series
from medivision.io.dicom_volume import read_series_volume
from medivision.io.errors import TRAIN_EXTRA
from medivision.io.intensity import IntensityMap
from medivision.io.jobs import Written, attempt
from medivision.io.outputs import Plan, uncertainty_path
from medivision.io.run_summary import RunSummary

logger = logging.getLogger(__name__)

THICK_NOTE = ("MediVision through-plane super-resolution of {spacing:g} mm slices ({thickness:g} mm thick) to "
              "{size:g} mm: a model estimate, not a measurement; its slabs agree with the acquired slices to "
              "{lr_psnr:.1f} dB (model {model})")
DISAGREEMENT_NOTE = ("MediVision disagreement map: |a - b| / 2 of the two through-plane orientations' estimates, "
                     "not an error bar (model {model})")


@dataclass(frozen=True)
class ThickSettings:
    """How enhance treats thick-slice volumes (medivision/conf/enhance.yaml)."""

    adapt: bool = False  # fine-tune on each scan's own in-plane slices first (PyTorch)
    adapt_seconds: float = 120.0
    slice_thickness: float | None = None  # mm; None: each volume's slice spacing (no gap)
    profile: str = "rect"
    uncertainty: bool = False
    overwrite: bool = False
    batch_size: int = 8
    tile: int = 256
    overlap: int = 32


def resolve_adapt(adapt: str | bool, ckpt: str | None) -> bool:
    """adapt=auto|true|false as a bool: auto adapts where PyTorch is installed and the model is not an ONNX file.
    ValueError naming the fix for adapt=true without them."""
    if adapt != "auto" and not isinstance(adapt, bool):
        raise ValueError(f"adapt={adapt!r} is not one of auto, true, false")
    torch_model = ckpt is None or not str(ckpt).lower().endswith(".onnx")
    torch_installed = has_torch()
    if adapt is True and not torch_installed:
        raise ValueError(f"adapt=true fine-tunes the model with PyTorch, which is not installed: {TRAIN_EXTRA}, or "
                         "pass adapt=false")
    if adapt is True and not torch_model:
        raise ValueError(f"adapt=true fine-tunes a .ckpt or .safetensors model; ckpt={ckpt} is ONNX: pass its "
                         ".safetensors twin, or adapt=false")
    return adapt is True or (adapt == "auto" and torch_installed and torch_model)


def check_through_plane(model: SRModel) -> None:
    """ValueError unless `model` was trained for through-plane volumes (data.degradation=slices)."""
    if model.degradation not in THROUGH_PLANE_KINDS:
        raise ValueError(f"{model.name} is a {model.scale}x in-plane model (trained with degradation="
                         f"{model.degradation}); through_plane=true needs a through-plane model (trained with "
                         "+experiment=general_thick): leave ckpt unset for the bundled one")


def enhance_volumes(todo: Plan, model: SRModel, settings: ThickSettings, intensity: str, run: RunSummary) -> None:
    """Every NIfTI volume and DICOM series of the plan made isotropic, into a NIfTI file: a volume's own target,
    `series<N>_<hash of its UID>_isotropic.nii.gz` beside a series' first target. Images, and any volume or series
    that fails, are skipped with their reason in `run`."""
    for source, _ in todo.images:
        run.skip(source, f"{source}: through_plane=true takes NIfTI volumes and DICOM series; enhance images "
                         "without through_plane")
    for source, target in todo.nifti:
        done = attempt(run.skip, [source], partial(_nifti, source, target, model, settings, intensity))
        if done is not None:
            run.add(*done)
    for sources, target in _dicom_series(todo.dicom, run):
        done = attempt(run.skip, sources, partial(_dicom, sources, target, model, settings, intensity))
        if done is not None:
            run.add(*done)


def _nifti(source: Path, target: Path, model: SRModel, settings: ThickSettings, intensity: str) -> Processed:
    image, data = nifti_files.read_nifti(source)
    return _volume(source, image, data, settings.slice_thickness, target, model, settings, intensity)


def _dicom(sources: list[Path], target: Path, model: SRModel, settings: ThickSettings, intensity: str) -> Processed:
    for path in [target, uncertainty_path(target)] if settings.uncertainty else [target]:
        if path.exists() and not settings.overwrite:
            raise ValueError(f"{path} exists: pass overwrite=true to replace it, or another output")
    image, thickness = read_series_volume(sources)
    named = "slice_thickness" if settings.slice_thickness else "the DICOM Slice Thickness"
    return _volume(sources[0].parent, image, image.get_fdata(dtype=np.float32), settings.slice_thickness or thickness,
                   target, model, settings, intensity, named)


def _dicom_series(pairs: list[tuple[Path, Path]], run: RunSummary) -> list[tuple[list[Path], Path]]:
    """The DICOM files of `pairs` grouped into series (headers only), each with its NIfTI target, named by the
    Series Number and a hash of the Series Instance UID (never by a tag's text)."""
    headers = []
    for source, _ in pairs:
        header = attempt(run.skip, [source], partial(pydicom.dcmread, source, stop_before_pixels=True))
        if header is not None:
            headers.append((source, header))
    targets = dict(pairs)
    return [([path for path, _ in members], targets[members[0][0]].parent /
             f"series{integer(members[0][1], 'SeriesNumber')}_{_hash(uid)}_isotropic.nii.gz")
            for uid, members in sort_series(headers).items()]


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _volume(source: Path, image: nib.Nifti1Image, data: np.ndarray, thickness: float | None, target: Path,
            model: SRModel, settings: ThickSettings, intensity: str,
            thickness_from: str = "slice_thickness") -> Processed:
    """One volume (values [X, Y, Z] as `image` lays them out) made isotropic and written to `target`."""
    mapping = IntensityMap.fit(data, intensity)
    unit = mapping.to_unit(data)
    if min(unit.shape) < 2:
        raise ValueError(f"{source} has shape {image.shape}: a 2-D image; through_plane=true needs a volume of "
                         "several slices")
    spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
    axis, geometry = slice_axis(spacing, thickness, thickness_from)
    geometry = replace(geometry, profile=settings.profile)
    _warn_outside_training(model, geometry)
    acquired = np.moveaxis(unit, axis, 0)
    name = model.name
    if settings.adapt:
        from medivision.inference.adapt import adapt  # PyTorch: only where adaptation was asked for

        adapted = adapt(model, acquired, _in_plane(geometry, spacing, axis), settings.adapt_seconds)
        model = adapted.model
        name = (f"{model.name}, adapted to this scan: step {adapted.best_step} of {adapted.steps} scored best on its "
                "held-out slices" if adapted.best_step else f"{model.name}, not adapted: {adapted.steps} steps of "
                "adaptation did not improve on its held-out slices")
    turns = acquired.shape[1] + acquired.shape[2]
    with tqdm(total=turns, desc=source.name, unit="image", leave=False) as bar:
        result = ThroughPlane(model, geometry, settings.batch_size, settings.tile, settings.overlap)(acquired,
                                                                                                     bar.update)
    in_plane = spacing[axis] / geometry.spacing
    note = THICK_NOTE.format(spacing=spacing[axis], thickness=geometry.thickness * in_plane, size=in_plane,
                             lr_psnr=result.lr_psnr, model=name)
    grid = nifti_files.slice_grid(axis, geometry.spacing, geometry.offset)
    target.parent.mkdir(parents=True, exist_ok=True)
    stored = mapping.from_unit(np.moveaxis(result.volume, 0, axis))
    nifti_files.write_nifti(target, nifti_files.derive(image, stored, grid, note))
    maps = []
    if settings.uncertainty:
        spread = mapping.spread().from_unit(np.moveaxis(result.disagreement, 0, axis))
        maps.append(uncertainty_path(target))
        nifti_files.write_nifti(maps[0], nifti_files.derive(image, spread, grid,
                                                            DISAGREEMENT_NOTE.format(model=name)))
    return Processed(Written([target], maps), [result.lr_psnr], [float(result.disagreement.mean())]
                     if settings.uncertainty else [])


def _warn_outside_training(model: SRModel, geometry: SliceGeometry) -> None:
    """A warning where the volume's slice factor lies outside the range the model was trained on."""
    low, high = model.degradation_options.get("slice_factor", (geometry.spacing, geometry.spacing))
    if not low <= geometry.spacing <= high:
        logger.warning("slices %.2fx coarser than in-plane: %s was trained on %g to %gx; its output may be off",
                       geometry.spacing, model.name, low, high)


def _in_plane(geometry: SliceGeometry, spacing: tuple[float, ...], axis: int) -> tuple[SliceGeometry, SliceGeometry]:
    """The slab geometry of slice axis `axis` in the pixels of each of the two in-plane axes (they differ where the
    in-plane spacings do; `geometry` is in the finer one's): what adaptation blurs each in-plane axis with."""
    finer = spacing[axis] / geometry.spacing
    rows, columns = (SliceGeometry(geometry.spacing * finer / spacing[k], geometry.thickness * finer / spacing[k],
                                   geometry.profile) for k in range(3) if k != axis)
    return rows, columns
