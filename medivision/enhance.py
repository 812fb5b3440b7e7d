"""`python -m medivision.enhance ckpt=PATH input=PATH output=PATH`: 4x super-resolution of files a clinic has.

Inputs: PNG/JPEG/TIFF images (8- or 16-bit, gray or RGB, any size), DICOM files or series, NIfTI volumes
(in-plane, slice by slice across `axis`), or a folder of any of them. The input is the low-resolution
image: every output is `scale` times larger in-plane. Stored values map to [0, 1] and back by the intensity
policy the model was trained with (medivision.io.intensity: per image; per series or volume for DICOM and
NIfTI, so slices stay comparable). Each output says in its metadata that it is a model estimate, and the
run reports how far degrade(SR) lies from the input (LR-consistency PSNR). Runs on the CPU unless device=cuda.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field
from functools import partial
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
from medivision.io.dicom_derived import DerivedSeries, derive
from medivision.io.errors import one_line_errors
from medivision.io.formats import ESTIMATE_NOTE
from medivision.io.intensity import INTENSITY_POLICIES, IntensityMap
from medivision.io.outputs import Plan, plan
from medivision.report.metrics import lr_consistency_psnr

logger = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="enhance")
@one_line_errors("medivision.enhance")
def main(cfg: DictConfig) -> None:
    print(enhance(cfg).summary())


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
    """What a run did: files written, files skipped with the reason, LR-consistency PSNR of each image/frame."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    lr_psnr: list[float] = field(default_factory=list)
    seconds: float = 0.0
    ignored: int = 0
    model: str = ""

    def add(self, result: tuple[list[Path], list[float]] | None) -> None:
        """Count one file's outputs and LR-consistency PSNRs (None: the file was skipped)."""
        if result is not None:
            self.written += result[0]
            self.lr_psnr += result[1]

    def skip(self, source: Path, reason: str) -> None:
        self.skipped.append((source, reason))

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
            lines.append(f"skipped {len(self.skipped)} of {len(self.skipped) + len(self.written)} files: "
                         + self.skipped_text(5))
        lines.append("The outputs are model estimates, not measurements; their metadata says so.")
        return "\n".join(lines)

    def skipped_text(self, most: int) -> str:
        """The first `most` reasons for skipping, on one line."""
        return "; ".join(reason for _, reason in self.skipped[:most]) + (" ..." if len(self.skipped) > most else "")


def enhance(cfg: DictConfig) -> Report:
    """Super-resolve cfg.input into cfg.output (see conf/enhance.yaml).

    A file that fails at any step (read, decode, model, write) is skipped with its reason and the rest is
    done. Raises ValueError when nothing was written, or with cfg.strict when anything was skipped.
    """
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
            report.add(_attempt(report, [source], partial(_image, source, target, upscaler, intensity, note, bar)))
        _dicom(todo.dicom, upscaler, intensity, cfg.dicom_format, note, report, bar)
        for source, target in todo.nifti:
            report.add(_attempt(report, [source],
                                partial(_volume, source, target, upscaler, intensity, cfg.axis, note, bar)))
    report.seconds = time.perf_counter() - start
    if not report.written:
        raise ValueError(report.skipped[0][1] if len(report.skipped) == 1 else (
            f"none of the {len(report.skipped)} input files could be enhanced: {report.skipped_text(3)}"))
    if cfg.strict and report.skipped:
        raise ValueError(f"strict=true: {len(report.skipped)} of {len(todo.pairs)} files were skipped "
                         f"({report.skipped_text(3)}); the other {len(report.written)} outputs are written")
    return report


def _quiet(todo: Plan) -> bool:
    return len(todo.pairs) < 2 and not todo.nifti


def _attempt(report: Report, sources: list[Path], work):
    """work()'s result, or None when it failed: the files it was for are skipped with the reason, and the run
    goes on. `sources` is one file, or the files of a DICOM series or intensity map, which fail together.

    ValueError is bad input, said in one line by the reader or writer. Anything else (a decoder, the model
    on an odd image, a full disk, or a bug) is logged with its traceback, so that no failure goes unseen;
    KeyboardInterrupt and SystemExit are not caught.
    """
    try:
        return work()
    except ValueError as error:
        message, traceback = str(error), False
    except Exception as error:
        message, traceback = f"{type(error).__name__}: {error}".replace("\n", " "), True
    together = f" ({len(sources)} files of one series, skipped together)" if len(sources) > 1 else ""
    for source in sources:
        reason = (message if str(source) in message else f"{source}: {message}") + together
        logger.warning("skipped %s", reason, exc_info=traceback and source == sources[0])
        report.skip(source, reason)
    return None


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
    stored, lr_psnr = _upscale(slices, upscaler, mapping.from_unit, bar)
    derived = nifti_files.derive(image, nifti_files.from_slices(stored, axis), axis, upscaler.model.scale, note)
    target.parent.mkdir(parents=True, exist_ok=True)
    nifti_files.write_nifti(target, derived)
    return [target], lr_psnr


def _upscale(unit: np.ndarray, upscaler: Upscaler, keep, bar) -> tuple[np.ndarray, list[float]]:
    """unit [N, C, h, w] in [0, 1] -> (keep(SR) [N, C, s*h, s*w], LR-consistency PSNR per image).

    `batch_size` images at a time, each chunk passed through `keep` (e.g. back to stored values) at once, so
    that memory stays near the output's.
    """
    out, lr_psnr = [], []
    for start in range(0, len(unit), upscaler.batch_size):
        sr, values = upscaler(unit[start:start + upscaler.batch_size])
        out.append(keep(sr))
        lr_psnr += values
        bar.update(len(sr))
    return np.concatenate(out), lr_psnr


def _dicom(pairs: list[tuple[Path, Path]], upscaler: Upscaler, intensity: str, dicom_format: str, note: str,
           report: Report, bar) -> None:
    """DICOM files grouped into series, each written to one new series; a file that fails is skipped alone,
    and where a series cannot be prepared (its new series, an intensity map), the files it is for.

    The single-frame files of a series with the same pixel type share one intensity map (they are slices
    of one volume); a multi-frame object has its own, for all its frames.
    """
    loaded, targets = [], {}
    for source, target in pairs:
        read = _attempt(report, [source], partial(dicom_files.read_dicom, source))
        if read is None:
            bar.update()
            continue
        loaded.append((source, read[0]))
        targets[source] = (target, read[1])
        bar.total += len(read[1]) - 1  # the bar counts frames
    start = datetime.datetime.now()
    for members in dicom_files.sort_series(loaded).values():
        series = _attempt(report, [path for path, _ in members], partial(DerivedSeries.beside, members[0][1], start))
        if series is None:
            continue
        for group in _intensity_groups(members, targets):
            sources = [path for path, _ in group]
            mapping = _attempt(report, sources, partial(_fit, [targets[path][1] for path in sources], intensity))
            if mapping is None:
                continue
            for source, dataset in group:
                target, stored = targets[source]
                report.add(_attempt(report, [source], partial(
                    _dicom_file, source, target, dataset, stored, mapping, series, upscaler, dicom_format, note, bar)))


def _intensity_groups(members: list, targets: dict) -> list[list]:
    """A series' files by the intensity map they share: single-frame files of one pixel type; each multi-frame."""
    groups: dict[tuple, list] = {}
    for member in members:
        stored = targets[member[0]][1]
        key = (member[0],) if len(stored) > 1 else (stored.dtype, stored.shape[1])
        groups.setdefault(key, []).append(member)
    return list(groups.values())


def _fit(stored: list[np.ndarray], intensity: str) -> IntensityMap:
    """One intensity map for the stored values of all of `stored`."""
    return IntensityMap.fit(np.concatenate([values.ravel() for values in stored]), intensity)


def _dicom_file(source: Path, target: Path, dataset, stored: np.ndarray, mapping: IntensityMap,
                series: DerivedSeries, upscaler: Upscaler, dicom_format: str, note: str, bar) -> tuple[list, list]:
    """One DICOM object, every frame super-resolved, written as one derived object (or, one frame, a PNG)."""
    if dicom_format == "png" and len(stored) > 1:
        raise ValueError(f"{source} holds {len(stored)} frames: dicom_format=png writes single-frame images, "
                         "so enhance it with dicom_format=dicom")
    keep = (lambda unit: unit) if dicom_format == "png" else mapping.from_unit
    sr, lr_psnr = _upscale(mapping.to_unit(stored), upscaler, keep, bar)
    target.parent.mkdir(parents=True, exist_ok=True)
    if dicom_format == "png":
        _dicom_png(target, sr[0], mapping, dataset, note)
    else:
        dicom_files.write_dicom(target, derive(dataset, sr, upscaler.model.scale, series, note))
    return [target], lr_psnr


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
