"""Every input of a run as jobs, one handler per format: images (PNG/JPEG/TIFF), DICOM series
(medivision.io.dicom_series) and NIfTI volumes. Each reads a file to unit images with their intensity map
(medivision.io.intensity) and writes the model's results back in the file's own format and units."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

from medivision.io import images as image_files
from medivision.io import nifti as nifti_files
from medivision.io.dicom_series import dicom_jobs
from medivision.io.jobs import Job, Notes, Result, Skip, Written, attempt, to_stored
from medivision.io.outputs import Plan, uncertainty_path


def jobs(todo: Plan, intensity: str, axis: int, dicom_format: str, scale: int, notes: Notes,
         skip: Skip) -> Iterator[Job]:
    """The jobs of a run's plan, file by file (read as they are reached); a file that cannot be read is skipped
    with its reason. `intensity` names the policy, `axis` the NIfTI slice axis, `scale` the model's factor."""
    for source, target in todo.images:
        job = attempt(skip, [source], partial(image_job, source, target, intensity, notes))
        if job is not None:
            yield job
    yield from dicom_jobs(todo.dicom, intensity, dicom_format, scale, notes, skip)
    for source, target in todo.nifti:
        job = attempt(skip, [source], partial(nifti_job, source, target, intensity, axis, scale, notes))
        if job is not None:
            yield job


def image_job(source: Path, target: Path, intensity: str, notes: Notes) -> Job:
    """An image file: one unit image [1, C, h, w], written back in the output's format and the input's dtype; an
    8-bit uncertainty map stretched to be seen (IntensityMap.spread)."""
    unit, mapping = image_files.read_unit(source, intensity)
    spread_map = []  # the uncertainty map's own map, which depends on its peak

    def store(result: Result) -> Result:
        if result.spread is None:
            return Result(mapping.from_unit(result.sr), None)
        spread_map.append(mapping.spread(peak=float(result.spread.max())))
        return Result(mapping.from_unit(result.sr), spread_map[0].from_unit(result.spread))

    def write(result: Result) -> Written:
        target.parent.mkdir(parents=True, exist_ok=True)
        image_files.write_image(target, result.sr[0], notes.image, f"{mapping.describe()}, as in {source.name}")
        if result.spread is None:
            return Written([target], [])
        image_files.write_image(uncertainty_path(target), result.spread[0], notes.uncertainty,
                                f"{spread_map[0].describe()}, unit: the std of the ensemble in [0, 1] units of "
                                f"{source.name}'s range (1 unit = {mapping.span:g} of its values)")
        return Written([target], [uncertainty_path(target)])

    return Job(source, unit[None], store, write)


def nifti_job(source: Path, target: Path, intensity: str, axis: int, scale: int, notes: Notes) -> Job:
    """A NIfTI volume: its slices across `axis` [N, 1, a, b], one intensity map for the whole volume."""
    image, unit, mapping = nifti_files.read_unit(source, intensity)
    grid = nifti_files.in_plane_grid(axis, scale)

    def write(result: Result) -> Written:
        target.parent.mkdir(parents=True, exist_ok=True)
        volume = nifti_files.from_slices(result.sr, axis)
        nifti_files.write_nifti(target, nifti_files.derive(image, volume, grid, notes.image))
        if result.spread is None:
            return Written([target], [])
        spread = nifti_files.from_slices(result.spread, axis)
        nifti_files.write_nifti(uncertainty_path(target),
                                nifti_files.derive(image, spread, grid, notes.uncertainty))
        return Written([target], [uncertainty_path(target)])

    return Job(source, nifti_files.to_slices(unit, axis), partial(to_stored, mapping), write)
