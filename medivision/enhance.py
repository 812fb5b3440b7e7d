"""`python -m medivision.enhance input=PATH output=PATH [ckpt=PATH]`: 4x super-resolution of files a clinic has.

Inputs: PNG/JPEG/TIFF images (8- or 16-bit, gray or RGB, any size), DICOM files or series, NIfTI volumes
(in-plane, slice by slice across `axis`), or a folder of any of them. The input is the low-resolution
image: every output is `scale` times larger in-plane. Stored values map to [0, 1] and back by the intensity
policy the model was trained with (medivision.io.intensity: per image; per series or volume for DICOM and
NIfTI, so slices stay comparable). Each output says in its metadata that it is a model estimate, and which
model made it; without `ckpt`, the bundled general model does. The run reports how far degrade(SR) lies from
the input (LR-consistency PSNR). ensemble=8 averages the 8 flips/rotations; with uncertainty=true their spread
is written beside each output as an uncertainty map, in the input's format (medivision.inference.ensemble).
Runs on the CPU unless device=cuda.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple

import hydra
import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from medivision.data.degradation_options import DegradationOptions, ForwardModel, options_problems
from medivision.inference.ensemble import check_ensemble
from medivision.inference.models import load_model
from medivision.inference.pipeline import Upscaled, Upscaler
from medivision.io import dicom as dicom_files
from medivision.io import images as image_files
from medivision.io import nifti as nifti_files
from medivision.io.dicom_derived import UNCERTAINTY_SERIES_OFFSET, DerivedSeries, derive, derive_uncertainty
from medivision.io.errors import one_line_errors
from medivision.io.formats import ESTIMATE_NOTE, UNCERTAINTY_NOTE
from medivision.io.intensity import INTENSITY_POLICIES, IntensityMap
from medivision.io.outputs import Plan, plan, uncertainty_path

logger = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="conf", config_name="enhance")
@one_line_errors("medivision.enhance")
def main(cfg: DictConfig) -> None:
    print(enhance(cfg).summary())


@dataclass
class Report:
    """What a run did: files written, files skipped with the reason, LR-consistency PSNR of each image/frame,
    and the mean of each image's uncertainty map (with uncertainty=true)."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    lr_psnr: list[float] = field(default_factory=list)
    maps: list[Path] = field(default_factory=list)
    mean_spread: list[float] = field(default_factory=list)
    seconds: float = 0.0
    ignored: int = 0
    model: str = ""
    ensemble: int = 1

    def add(self, result: Done | None) -> None:
        """Count one file's outputs (None: the file was skipped)."""
        if result is not None:
            self.written += result.outputs
            self.maps += result.maps
            self.lr_psnr += result.lr_psnr
            self.mean_spread += result.mean_spread

    def skip(self, source: Path, reason: str) -> None:
        self.skipped.append((source, reason))

    def summary(self) -> str:
        passes = " (8-fold self-ensemble)" if self.ensemble == 8 else ""
        lines = [f"enhanced {len(self.written)} files ({len(self.lr_psnr)} images/slices) in {self.seconds:.1f} s "
                 f"with {self.model}{passes}"]
        if self.lr_psnr:
            lines.append(f"LR-consistency PSNR, degrade(SR) vs input: mean {np.mean(self.lr_psnr):.2f} dB, "
                         f"lowest {np.min(self.lr_psnr):.2f} dB (higher: closer to what was measured)")
        if self.written:
            lines.append(f"outputs: {self.written[0]}" + (f" ... ({len(self.written)} files)"
                                                          if len(self.written) > 1 else ""))
        if self.maps:
            lines.append(f"uncertainty maps (std of the 8 ensemble outputs, beside each output as *_uncertainty): "
                         f"{len(self.maps)} files; mean {np.mean(self.mean_spread):.4f}, highest image "
                         f"{np.max(self.mean_spread):.4f} (in [0, 1] units of the image's intensity map)")
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


class Done(NamedTuple):
    """One input file enhanced: its output, its uncertainty map ([] without), and its images' numbers."""

    outputs: list[Path]
    maps: list[Path]
    lr_psnr: list[float]
    mean_spread: list[float]


@dataclass(frozen=True)
class Notes:
    """The labels of a run's outputs: the SR images' and the uncertainty maps'."""

    image: str
    uncertainty: str


def enhance(cfg: DictConfig) -> Report:
    """Super-resolve cfg.input into cfg.output (see conf/enhance.yaml).

    A file that fails at any step (read, decode, model, write) is skipped with its reason and the rest is
    done. Raises ValueError when nothing was written, or with cfg.strict when anything was skipped.
    """
    ensemble = check_ensemble(cfg.ensemble)
    if cfg.uncertainty and ensemble != 8:
        raise ValueError("uncertainty=true maps the spread of the 8 self-ensemble outputs: pass ensemble=8 with it")
    todo = plan(cfg.input, cfg.output, cfg.dicom_format, cfg.overwrite, cfg.allow_inside_input, cfg.uncertainty)
    if cfg.axis not in (0, 1, 2):
        raise ValueError(f"axis={cfg.axis} must be 0, 1 or 2 (the NIfTI array axis slices are cut across)")
    if cfg.intensity is not None and cfg.intensity not in INTENSITY_POLICIES:
        raise ValueError(f"intensity={cfg.intensity!r} is not one of {', '.join(INTENSITY_POLICIES)}, or null for "
                         "the model's own")
    problems = options_problems(cfg.degradation_options)
    if problems:
        raise ValueError("; ".join("degradation_options" + problem for problem in problems))
    model = load_model(cfg.ckpt, cfg.device, cfg.precision, cfg.threads)
    intensity = cfg.intensity or model.intensity
    if intensity != model.intensity:
        logger.warning("intensity=%s: %s was trained on data mapped with %s; its outputs may be off",
                       intensity, model.name, model.intensity)
    options = cfg.degradation_options if cfg.degradation else model.degradation_options
    forward = ForwardModel.of(cfg.degradation or model.degradation, DegradationOptions.from_config(options))
    upscaler = Upscaler(model, forward, cfg.tile, cfg.overlap, cfg.batch_size, cfg.consistency,
                        cfg.consistency_iterations, ensemble)
    report = Report(ignored=todo.ignored, model=model.name, ensemble=ensemble)
    notes = Notes(ESTIMATE_NOTE.format(scale=model.scale, model=model.name),
                  UNCERTAINTY_NOTE.format(scale=model.scale, model=model.name) if cfg.uncertainty else "")
    start = time.perf_counter()
    with tqdm(total=len(todo.images) + len(todo.dicom), unit="image", disable=_quiet(todo), leave=False) as bar:
        for source, target in todo.images:
            report.add(_attempt(report, [source], partial(_image, source, target, upscaler, intensity, notes, bar)))
        _dicom(todo.dicom, upscaler, intensity, cfg.dicom_format, notes, report, bar)
        for source, target in todo.nifti:
            report.add(_attempt(report, [source],
                                partial(_volume, source, target, upscaler, intensity, cfg.axis, notes, bar)))
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


def _image(source: Path, target: Path, upscaler: Upscaler, intensity: str, notes: Notes, bar) -> Done:
    unit, mapping = image_files.read_unit(source, intensity)
    done = upscaler(unit[None])
    target.parent.mkdir(parents=True, exist_ok=True)
    image_files.write_image(target, mapping.from_unit(done.sr[0]), notes.image,
                            f"{mapping.describe()}, as in {source.name}")
    maps = []
    if notes.uncertainty:
        spread = mapping.spread()
        maps.append(uncertainty_path(target))
        image_files.write_image(maps[0], spread.from_unit(done.spread[0]), notes.uncertainty,
                                f"{spread.describe()}: the std of the ensemble in {source.name}'s units")
    bar.update()
    return Done([target], maps, done.lr_psnr, done.mean_spread)


def _volume(source: Path, target: Path, upscaler: Upscaler, intensity: str, axis: int, notes: Notes, bar) -> Done:
    """A NIfTI volume, slice by slice across `axis`, one intensity map for the whole volume."""
    image, unit, mapping = nifti_files.read_unit(source, intensity)
    slices = nifti_files.to_slices(unit, axis)
    bar.total += len(slices)
    done = _upscale(slices, upscaler, mapping, bar, keep_unit=False)
    scale = upscaler.model.scale
    target.parent.mkdir(parents=True, exist_ok=True)
    nifti_files.write_nifti(target, nifti_files.derive(image, nifti_files.from_slices(done.sr, axis), axis, scale,
                                                       notes.image))
    maps = []
    if notes.uncertainty:
        maps.append(uncertainty_path(target))
        nifti_files.write_nifti(maps[0], nifti_files.derive(image, nifti_files.from_slices(done.spread, axis), axis,
                                                            scale, notes.uncertainty))
    return Done([target], maps, done.lr_psnr, done.mean_spread)


def _upscale(unit: np.ndarray, upscaler: Upscaler, mapping: IntensityMap, bar, keep_unit: bool) -> Upscaled:
    """unit [N, C, h, w] in [0, 1] -> SR [N, C, s*h, s*w] and its uncertainty map as stored values of `mapping`
    (or left in [0, 1] with keep_unit), with the LR-consistency PSNR and mean uncertainty per image.

    `batch_size` images at a time, each chunk mapped back to stored values at once, so that memory stays near
    the output's.
    """
    sr, spread, lr_psnr, mean_spread = [], [], [], []
    for done in upscaler.chunks(unit, bar.update):
        sr.append(done.sr if keep_unit else mapping.from_unit(done.sr))
        if done.spread is not None:
            spread.append(done.spread if keep_unit else mapping.spread().from_unit(done.spread))
        lr_psnr += done.lr_psnr
        mean_spread += done.mean_spread
    return Upscaled(np.concatenate(sr), np.concatenate(spread) if spread else None, lr_psnr, mean_spread)


def _dicom(pairs: list[tuple[Path, Path]], upscaler: Upscaler, intensity: str, dicom_format: str, notes: Notes,
           report: Report, bar) -> None:
    """DICOM files grouped into series, each written to one new series (its uncertainty maps to another); a file
    that fails is skipped alone, and where a series cannot be prepared (its new series, an intensity map), the
    files it is for.

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
        first = members[0][1]
        series = _attempt(report, [path for path, _ in members], partial(_new_series, first, start, notes))
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
                    _dicom_file, source, target, dataset, stored, mapping, series, upscaler, dicom_format, notes,
                    bar)))


def _new_series(first, start: datetime.datetime, notes: Notes) -> tuple[DerivedSeries, DerivedSeries | None]:
    """The new series of a source series' SR images, and of their uncertainty maps when asked for."""
    maps = DerivedSeries.beside(first, start, UNCERTAINTY_SERIES_OFFSET) if notes.uncertainty else None
    return DerivedSeries.beside(first, start), maps


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
                series: tuple[DerivedSeries, DerivedSeries | None], upscaler: Upscaler, dicom_format: str,
                notes: Notes, bar) -> Done:
    """One DICOM object, every frame super-resolved, written as one derived object (or, one frame, a PNG); its
    uncertainty map likewise, beside it."""
    if dicom_format == "png" and len(stored) > 1:
        raise ValueError(f"{source} holds {len(stored)} frames: dicom_format=png writes single-frame images, "
                         "so enhance it with dicom_format=dicom")
    done = _upscale(mapping.to_unit(stored), upscaler, mapping, bar, keep_unit=dicom_format == "png")
    scale = upscaler.model.scale
    maps = [uncertainty_path(target)] if notes.uncertainty else []
    target.parent.mkdir(parents=True, exist_ok=True)
    if dicom_format == "png":
        _dicom_png(target, done.sr[0], mapping, dataset, notes.image)
        if maps:
            _dicom_png(maps[0], done.spread[0], mapping.spread(), dataset, notes.uncertainty)
    else:
        dicom_files.write_dicom(target, derive(dataset, done.sr, scale, series[0], notes.image))
        if maps:
            dicom_files.write_dicom(maps[0], derive_uncertainty(dataset, done.spread, scale, series[1],
                                                                notes.uncertainty))
    return Done([target], maps, done.lr_psnr, done.mean_spread)


def _dicom_png(target: Path, unit: np.ndarray, mapping: IntensityMap, dataset, note: str) -> None:
    """A DICOM's SR image (or uncertainty map) as a PNG: 8-bit stored values as they are, anything wider on the
    16-bit scale."""
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
