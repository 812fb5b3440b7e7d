"""`python -m medivision.enhance ckpt=PATH input=PATH output=PATH`: 4x super-resolution of files a clinic has.

Inputs: PNG/JPEG/TIFF images (8- or 16-bit, gray or RGB, any size), DICOM files or series, NIfTI volumes
(in-plane, slice by slice across `axis`), or a folder of any of them. The input is the low-resolution
image: every output is `scale` times larger in-plane. Stored values map to [0, 1] and back by the intensity
policy the model was trained with (medivision.io.intensity: per image; per series or volume for DICOM and
NIfTI, so slices stay comparable). Each output says in its metadata that it is a model estimate, and the
run reports how far degrade(SR) lies from the input (LR-consistency PSNR). Runs on the CPU unless device=cuda.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from medivision.data.degradations import DEGRADATIONS, DegradationOptions
from medivision.inference.consistency import make_consistent
from medivision.inference.models import SRModel, load_model
from medivision.inference.tiling import super_resolve
from medivision.io import dicom as dicom_files
from medivision.io import images as image_files
from medivision.io import nifti as nifti_files
from medivision.io.formats import ESTIMATE_NOTE
from medivision.io.intensity import INTENSITY_POLICIES, IntensityMap
from medivision.io.outputs import Plan, plan
from medivision.report.metrics import lr_consistency_psnr

logger = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="enhance")
def main(cfg: DictConfig) -> None:
    try:
        print(enhance(cfg).summary())
    except (ValueError, FileNotFoundError) as error:  # bad input: one line naming the file and the fix
        raise SystemExit(f"medivision.enhance: {error}") from None


@dataclass
class Upscaler:
    """A model with the run's tiling and consistency settings: unit images in, SR unit images out."""

    model: SRModel
    tile: int = 256
    overlap: int = 32
    batch_size: int = 16
    consistency: bool = False
    iterations: int = 20
    degradation: str = "bicubic"
    degradation_options: DegradationOptions | None = None

    def __call__(self, unit: np.ndarray) -> tuple[np.ndarray, list[float]]:
        """float32 [N, C, h, w] in [0, 1] -> (float32 [N, C, s*h, s*w] in [0, 1], LR-consistency PSNR per image)."""
        lr = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32))
        scale = self.model.scale
        sr = super_resolve(self.model, lr, scale, self.tile, self.overlap, self.batch_size)
        if self.consistency:
            sr = make_consistent(sr, lr, scale, self.degradation, self.iterations, self.degradation_options)
        return sr.numpy(), lr_consistency_psnr(sr, lr, scale, self.degradation, self.degradation_options).tolist()


@dataclass
class Report:
    """What a run did: files written, files skipped with the reason, LR-consistency PSNR of each image."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    lr_psnr: list[float] = field(default_factory=list)
    seconds: float = 0.0
    ignored: int = 0
    model: str = ""

    def summary(self) -> str:
        lines = [f"enhanced {len(self.written)} files ({len(self.lr_psnr)} images/slices) in {self.seconds:.1f} s "
                 f"with {self.model}"]
        if self.lr_psnr:
            lines.append(f"LR-consistency PSNR, degrade(SR) vs input: mean {np.mean(self.lr_psnr):.2f} dB, "
                         f"lowest {np.min(self.lr_psnr):.2f} dB (higher: closer to what was measured)")
        if self.written:
            lines.append(f"outputs: {self.written[0]}" + (f" ... ({len(self.written)} files)"
                                                          if len(self.written) > 1 else ""))
        if self.ignored:
            lines.append(f"ignored {self.ignored} files that are not images, DICOM or NIfTI")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} unreadable files: " + "; ".join(
                f"{reason}" for _, reason in self.skipped[:5]) + (" ..." if len(self.skipped) > 5 else ""))
        lines.append("The outputs are model estimates, not measurements; their metadata says so.")
        return "\n".join(lines)


def enhance(cfg: DictConfig) -> Report:
    """Super-resolve cfg.input into cfg.output (see conf/enhance.yaml). Raises if nothing could be enhanced."""
    todo = plan(cfg.input, cfg.output, cfg.dicom_format, cfg.overwrite, cfg.allow_inside_input)
    if cfg.axis not in (0, 1, 2):
        raise ValueError(f"axis={cfg.axis} must be 0, 1 or 2 (the NIfTI array axis slices are cut across)")
    if cfg.intensity is not None and cfg.intensity not in INTENSITY_POLICIES:
        raise ValueError(f"intensity={cfg.intensity!r} is not one of {', '.join(INTENSITY_POLICIES)}, or null for "
                         "the model's own")
    if cfg.degradation not in DEGRADATIONS:
        raise ValueError(f"degradation={cfg.degradation!r} is not one of {', '.join(DEGRADATIONS)}")
    options = DegradationOptions.from_config(cfg.get("degradation_options"))
    model = load_model(cfg.ckpt, cfg.device, cfg.precision)
    intensity = cfg.intensity or model.intensity
    if intensity != model.intensity:
        logger.warning("intensity=%s: %s was trained on data mapped with %s; its outputs may be off",
                       intensity, model.name, model.intensity)
    upscaler = Upscaler(model, cfg.tile, cfg.overlap, cfg.batch_size, cfg.consistency, cfg.consistency_iterations,
                        cfg.degradation, options)
    report = Report(ignored=todo.ignored, model=model.name)
    note = ESTIMATE_NOTE.format(scale=model.scale, model=model.name)
    start = time.perf_counter()
    with tqdm(total=len(todo.images) + len(todo.dicom), unit="image", disable=_quiet(todo), leave=False) as bar:
        for source, target in todo.images:
            _attempt(report, source, lambda s=source, t=target: _image(s, t, upscaler, intensity, note, bar))
        _dicom(todo.dicom, upscaler, intensity, cfg.dicom_format, note, report, bar)
        for source, target in todo.nifti:
            _attempt(report, source,
                     lambda s=source, t=target: _volume(s, t, upscaler, intensity, cfg.axis, note, bar))
    report.seconds = time.perf_counter() - start
    if not report.written:
        raise ValueError(report.skipped[0][1])
    return report


def _quiet(todo: Plan) -> bool:
    return len(todo.pairs) < 2 and not todo.nifti


def _attempt(report: Report, source: Path, work) -> None:
    """Run one file's work, adding its outputs to the report; an unreadable file is skipped, not fatal."""
    try:
        written, lr_psnr = work()
    except ValueError as error:
        logger.warning("skipped %s", error)
        report.skipped.append((source, str(error)))
        return
    report.written += written
    report.lr_psnr += lr_psnr


def _image(source: Path, target: Path, upscaler: Upscaler, intensity: str, note: str, bar) -> tuple[list, list]:
    unit, mapping = image_files.read_unit(source, intensity)
    sr, lr_psnr = upscaler(unit[None])
    target.parent.mkdir(parents=True, exist_ok=True)
    image_files.write_image(target, mapping.from_unit(sr[0]), note, f"{mapping.describe()}, as in {source.name}")
    bar.update()
    return [target], lr_psnr


def _volume(source: Path, target: Path, upscaler: Upscaler, intensity: str, axis: int, note: str,
            bar) -> tuple[list, list]:
    """A NIfTI volume, slice by slice across `axis`, one intensity map for the whole volume."""
    image, unit, mapping = nifti_files.read_unit(source, intensity)
    slices = nifti_files.to_slices(unit, axis)
    bar.total += len(slices)
    out, lr_psnr = [], []
    for start in range(0, len(slices), upscaler.batch_size):
        sr, values = upscaler(slices[start:start + upscaler.batch_size])
        out.append(mapping.from_unit(sr))  # back to stored values chunk by chunk: memory stays near the output's
        lr_psnr += values
        bar.update(len(sr))
    derived = nifti_files.derive(image, nifti_files.from_slices(np.concatenate(out), axis), axis,
                                 upscaler.model.scale, note)
    target.parent.mkdir(parents=True, exist_ok=True)
    nifti_files.write_nifti(target, derived)
    return [target], lr_psnr


def _dicom(pairs: list[tuple[Path, Path]], upscaler: Upscaler, intensity: str, dicom_format: str, note: str,
           report: Report, bar) -> None:
    """DICOM files grouped into series; each series gets one intensity map and one new Series Instance UID."""
    loaded, targets = [], {}
    for source, target in pairs:
        try:
            dataset, pixels = dicom_files.read_dicom(source)
        except ValueError as error:
            logger.warning("skipped %s", error)
            report.skipped.append((source, str(error)))
            bar.update()
            continue
        loaded.append((source, dataset))
        targets[source] = (target, pixels)
    for members in dicom_files.sort_series(loaded).values():
        stored = [targets[source][1] for source, _ in members]
        mapping = IntensityMap.fit(np.concatenate([pixels.ravel() for pixels in stored]), intensity)
        series_uid = dicom_files.new_series_uid()
        for (source, dataset), pixels in zip(members, stored):
            sr, lr_psnr = upscaler(mapping.to_unit(pixels)[None])
            target = targets[source][0]
            target.parent.mkdir(parents=True, exist_ok=True)
            if dicom_format == "png":
                _dicom_png(target, sr[0], mapping, dataset, note)
            else:
                derived = dicom_files.derive(dataset, mapping.from_unit(sr[0]), upscaler.model.scale, series_uid, note)
                dicom_files.write_dicom(target, derived)
            report.written.append(target)
            report.lr_psnr += lr_psnr
            bar.update()


def _dicom_png(target: Path, unit: np.ndarray, mapping: IntensityMap, dataset, note: str) -> None:
    """A DICOM's SR image as a PNG: 8-bit stored values as they are, anything wider on the 16-bit scale."""
    slope, intercept = float(dataset.get("RescaleSlope", 1) or 1), float(dataset.get("RescaleIntercept", 0) or 0)
    if np.dtype(mapping.dtype) == np.uint8:
        pixels, how = mapping.from_unit(unit), "PNG values are the stored values"
    else:
        pixels = np.rint(unit * 65535).astype(np.uint16)
        how = f"stored value = {mapping.low:g} + png / 65535 * {mapping.span:g}"
    intensity = f"{how}; modality value = {slope:g} * stored + {intercept:g}"
    image_files.write_image(target, pixels, note, intensity)


if __name__ == "__main__":
    main()
