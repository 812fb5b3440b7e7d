"""DICOM inputs as jobs: files grouped into series, one intensity map per group of slices, each series written to
a new derived series (its uncertainty maps to another), or each file to a PNG."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np

from medivision.io import dicom as dicom_files
from medivision.io import images as image_files
from medivision.io.dicom_derived import UNCERTAINTY_SERIES_OFFSET, DerivedSeries, derive, derive_uncertainty
from medivision.io.intensity import IntensityMap
from medivision.io.jobs import Job, Notes, Result, Skip, Written, attempt, to_stored
from medivision.io.outputs import uncertainty_path


def dicom_jobs(pairs: list[tuple[Path, Path]], intensity: str, dicom_format: str, scale: int, notes: Notes,
               skip: Skip) -> Iterator[Job]:
    """One job per DICOM file of `pairs` (source, target). A file that cannot be read is skipped alone; where a
    series cannot be prepared (its new series, an intensity map), the files it is for are skipped together.

    The single-frame files of a series with the same pixel type share one intensity map (they are slices of one
    volume); a multi-frame object has its own, for all its frames.
    """
    loaded, targets = [], {}
    for source, target in pairs:
        read = attempt(skip, [source], partial(dicom_files.read_dicom, source))
        if read is not None:
            loaded.append((source, read[0]))
            targets[source] = (target, read[1])
    start = datetime.datetime.now()
    for members in dicom_files.sort_series(loaded).values():
        series = attempt(skip, [path for path, _ in members], partial(_new_series, members[0][1], start, notes))
        if series is None:
            continue
        for group in _intensity_groups(members, targets):
            sources = [path for path, _ in group]
            mapping = attempt(skip, sources, partial(_fit, [targets[path][1] for path in sources], intensity))
            if mapping is None:
                continue
            for source, dataset in group:
                job = attempt(skip, [source], partial(_job, source, dataset, *targets[source], mapping, series, scale,
                                                      dicom_format, notes))
                if job is not None:
                    yield job


def _job(source: Path, dataset, target: Path, stored: np.ndarray, mapping: IntensityMap,
         series: tuple[DerivedSeries, DerivedSeries | None], scale: int, dicom_format: str, notes: Notes) -> Job:
    """One DICOM object's job: to a derived object in stored values, or (one frame) to a PNG from unit values."""
    if dicom_format == "png" and len(stored) > 1:
        raise ValueError(f"{source} holds {len(stored)} frames: dicom_format=png writes single-frame images, "
                         "so enhance it with dicom_format=dicom")
    store = (lambda result: result) if dicom_format == "png" else partial(to_stored, mapping)
    write = partial(_write, target, dataset, mapping, series, scale, dicom_format, notes)
    return Job(source, mapping.to_unit(stored), store, write)


def _new_series(first, start: datetime.datetime, notes: Notes) -> tuple[DerivedSeries, DerivedSeries | None]:
    """The new series of a source series' SR images, and of their uncertainty maps when asked for."""
    maps = DerivedSeries.beside(first, start, UNCERTAINTY_SERIES_OFFSET, notes.image) if notes.uncertainty else None
    return DerivedSeries.beside(first, start, model=notes.image), maps


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


def _write(target: Path, dataset, mapping: IntensityMap, series: tuple[DerivedSeries, DerivedSeries | None],
           scale: int, dicom_format: str, notes: Notes, result: Result) -> Written:
    """One DICOM object's frames, super-resolved, as one derived object (stored values), or, one frame, a PNG (unit
    values); its uncertainty map likewise, beside it."""
    maps = [uncertainty_path(target)] if notes.uncertainty else []
    target.parent.mkdir(parents=True, exist_ok=True)
    if dicom_format == "png":
        _png(target, result.sr[0], mapping, dataset, notes.image)
        if maps:
            peak = float(result.spread[0].max())
            _png(maps[0], result.spread[0], mapping.spread(peak=peak), dataset, notes.uncertainty)
        return Written([target], maps)
    dicom_files.write_dicom(target, derive(dataset, result.sr, scale, series[0], notes.image))
    if maps:
        dicom_files.write_dicom(maps[0], derive_uncertainty(dataset, result.spread, scale, series[1],
                                                            notes.uncertainty))
    return Written([target], maps)


def _png(target: Path, unit: np.ndarray, mapping: IntensityMap, dataset, note: str) -> None:
    """A DICOM's SR image (or uncertainty map) as a PNG: 8-bit stored values as they are, anything wider on the
    16-bit scale."""
    slope, intercept = float(dataset.get("RescaleSlope", 1) or 1), float(dataset.get("RescaleIntercept", 0) or 0)
    if np.dtype(mapping.dtype) == np.uint8:
        pixels, how = mapping.from_unit(unit), f"PNG values are stored values, {mapping.describe()}"
    else:
        pixels = IntensityMap(0.0, 65535.0, np.dtype(np.uint16)).from_unit(unit)
        how = f"stored value = {mapping.low:g} + png / 65535 * {mapping.span:g}"
    intensity = f"{how}; modality value = {slope:g} * stored + {intercept:g}"
    image_files.write_image(target, pixels, note, intensity)
