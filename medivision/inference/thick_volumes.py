"""enhance's through-plane mode (through_plane=true): thick-slice NIfTI volumes in, isotropic NIfTI volumes out.

Each volume is read with one intensity map (medivision.io.nifti), its slice axis and geometry come from its
voxel spacing (medivision.inference.through_plane.slice_axis), the model is adapted to it if asked
(medivision.inference.adapt, PyTorch), and the isotropic result is written on a grid that keeps the acquired
slices where they were (medivision.io.nifti.slice_grid), labelled as a model estimate. With uncertainty=true the
disagreement of the two through-plane orientations is written beside it.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from medivision.data.degradation_options import THROUGH_PLANE_KINDS
from medivision.inference.models import SRModel
from medivision.inference.pipeline import Processed
from medivision.inference.through_plane import ThroughPlane, slice_axis
from medivision.io import nifti as nifti_files
from medivision.io.errors import TRAIN_EXTRA
from medivision.io.jobs import Written, attempt
from medivision.io.outputs import Plan, uncertainty_path
from medivision.io.run_summary import RunSummary

logger = logging.getLogger(__name__)

THICK_NOTE = ("MediVision through-plane super-resolution of {spacing:g} mm slices ({thickness:g} mm thick) to "
              "{size:g} mm: a model estimate, not a measurement; its slabs agree with the acquired slices to "
              "{lr_psnr:.1f} dB (model {model})")
DISAGREEMENT_NOTE = ("MediVision disagreement map: |a - b| / 2 of the two through-plane orientations' estimates, "
                     "not an error bar (model {model})")
ADAPT = ("auto", True, False)


@dataclass(frozen=True)
class ThickSettings:
    """How enhance treats thick-slice volumes (medivision/conf/enhance.yaml)."""

    adapt: bool = False  # fine-tune on each scan's own in-plane slices first (PyTorch)
    adapt_seconds: float = 120.0
    slice_thickness: float | None = None  # mm; None: each volume's slice spacing (no gap)
    profile: str = "rect"
    uncertainty: bool = False
    batch_size: int = 8


def resolve_adapt(adapt: str | bool, ckpt: str | None) -> bool:
    """adapt=auto|true|false as a bool: auto adapts where PyTorch is installed and the model is not an ONNX file.
    ValueError naming the fix for adapt=true without them."""
    if adapt not in ADAPT:
        raise ValueError(f"adapt={adapt!r} is not one of auto, true, false")
    torch_model = ckpt is None or not str(ckpt).lower().endswith(".onnx")
    has_torch = importlib.util.find_spec("torch") is not None
    if adapt is True and not has_torch:
        raise ValueError(f"adapt=true fine-tunes the model with PyTorch, which is not installed: {TRAIN_EXTRA}, or "
                         "pass adapt=false")
    if adapt is True and not torch_model:
        raise ValueError(f"adapt=true fine-tunes a .ckpt or .safetensors model; ckpt={ckpt} is ONNX: pass its "
                         ".safetensors twin, or adapt=false")
    return adapt is True or (adapt == "auto" and has_torch and torch_model)


def check_through_plane(model: SRModel) -> None:
    """ValueError unless `model` was trained for through-plane volumes (data.degradation=slices)."""
    if model.degradation not in THROUGH_PLANE_KINDS:
        raise ValueError(f"{model.name} is a {model.scale}x in-plane model (trained with degradation="
                         f"{model.degradation}); through_plane=true needs a through-plane model (trained with "
                         "+experiment=general_thick): leave ckpt unset for the bundled one")


def enhance_volumes(todo: Plan, model: SRModel, settings: ThickSettings, intensity: str, run: RunSummary) -> None:
    """Every NIfTI volume of the plan made isotropic into its target; any other input, and any volume that fails,
    is skipped with its reason in `run`."""
    for source, _ in todo.images + todo.dicom:
        run.skip(source, f"{source}: through_plane=true takes NIfTI volumes; enhance it without through_plane")
    for source, target in todo.nifti:
        done = attempt(run.skip, [source], partial(_volume, source, target, model, settings, intensity))
        if done is not None:
            run.add(*done)


def _volume(source: Path, target: Path, model: SRModel, settings: ThickSettings, intensity: str) -> Processed:
    image, unit, mapping = nifti_files.read_unit(source, intensity)
    if min(unit.shape) < 2:
        raise ValueError(f"{source} has shape {image.shape}: a 2-D image; through_plane=true needs a volume of "
                         "several slices")
    spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
    axis, geometry = slice_axis(spacing, settings.slice_thickness)
    geometry = replace(geometry, profile=settings.profile)
    acquired = np.moveaxis(unit, axis, 0)
    name = model.name
    if settings.adapt:
        from medivision.inference.adapt import adapt  # PyTorch: only where adaptation was asked for

        model, steps = adapt(model, acquired, geometry, settings.adapt_seconds)
        name = f"{model.name}, adapted to this scan for {steps} steps"
    turns = acquired.shape[1] + acquired.shape[2]
    with tqdm(total=turns, desc=source.name, unit="image", leave=False) as bar:
        result = ThroughPlane(model, geometry, settings.batch_size)(acquired, bar.update)
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
