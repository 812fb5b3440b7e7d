"""DICOM files in and out, with pydicom: reading any transfer syntax, grouping series, writing uncompressed.

Compressed pixel data is decoded by pydicom's plugins (dependencies of the package): pylibjpeg-libjpeg for
JPEG baseline, extended (12-bit) and lossless, pyjpegls for JPEG-LS, pylibjpeg-openjpeg for JPEG 2000 and
pylibjpeg-rle for RLE. Big endian and deflated files are read by pydicom itself. Outputs are always written
Explicit VR Little Endian, uncompressed (medivision.io.dicom_derived builds them).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
_PREAMBLE = 128


def looks_like_dicom(path: Path) -> bool:
    """A .dcm/.dicom name, or "DICM" after the 128-byte preamble (series are often stored without suffix)."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as file:
            file.seek(_PREAMBLE)
            return file.read(4) == b"DICM"
    except OSError:
        return False


def read_dicom(path: Path) -> tuple[Dataset, np.ndarray]:
    """A DICOM image and its stored pixel values, [F, C, H, W] in native byte order.

    F: frames (1 for a single-frame object), C: 1, or 3 for colour (YBR data is decoded to RGB). Raises
    ValueError naming the file and the fix when it is not DICOM, has no pixel data, holds palette indices,
    or its pixel data cannot be decoded (no decoder, a damaged or truncated stream).
    """
    try:
        dataset = pydicom.dcmread(path)
        has_pixels = "PixelData" in dataset
    except Exception as error:  # pydicom's parser raises many types on damaged files; all mean "not readable"
        raise ValueError(f"{path} cannot be read as DICOM ({error}): is it a DICOM file, and complete?") from error
    if not has_pixels:
        raise ValueError(
            f"{path} has no pixel data (a DICOMDIR, report or presentation state, not an image): leave it out"
        )
    if dataset.get("PhotometricInterpretation") == "PALETTE COLOR":
        raise ValueError(f"{path} holds palette indices, not intensities: convert it to RGB or grayscale first")
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # pydicom's decoders raise many types; all mean "cannot decode these pixels"
        syntax = dataset.file_meta.get("TransferSyntaxUID", "unknown")
        reason = str(error).replace("\n", " ")
        raise ValueError(
            f"{path}: its pixel data cannot be decoded (transfer syntax {getattr(syntax, 'name', syntax)}: "
            f"{reason}); decompress or re-export the file"
        ) from error
    pixels = pixels.astype(pixels.dtype.newbyteorder("="), copy=False)  # big endian files decode big endian
    frames = int(dataset.get("NumberOfFrames") or 1)
    colour = pixels.ndim == (4 if frames > 1 else 3)
    pixels = pixels.reshape(frames, *pixels.shape[-3 if colour else -2:])  # [F, H, W] or [F, H, W, 3]
    return dataset, np.moveaxis(pixels, -1, 1) if colour else pixels[:, None]


def sort_series(items: Sequence[tuple[Path, Dataset]]) -> dict[str, list[tuple[Path, Dataset]]]:
    """Group DICOM files by Series Instance UID, each series ordered by Instance Number (0 if invalid), then name."""
    series: dict[str, list[tuple[Path, Dataset]]] = {}
    for path, dataset in items:
        series.setdefault(str(dataset.get("SeriesInstanceUID", path.parent)), []).append((path, dataset))
    for members in series.values():
        members.sort(key=lambda item: (integer(item[1], "InstanceNumber"), item[0].name))
    return series


def integer(dataset: Dataset, keyword: str, default: int = 0) -> int:
    """The value of an IS (integer string) element, or `default` where it is absent, empty or not an integer.

    pydicom keeps an invalid IS value (e.g. 'ab', written by a non-conformant device) as its text.
    """
    try:
        return int(dataset.get(keyword) or default)
    except (TypeError, ValueError, OverflowError):
        return default


def write_dicom(path: Path, dataset: Dataset) -> None:
    """Write `dataset` as a DICOM file, Explicit VR Little Endian (the transfer syntax its file meta names)."""
    pydicom.dcmwrite(path, dataset, enforce_file_format=True)
