"""DICOM slices and series in, derived (super-resolved) DICOM out, with pydicom.

Pixel values stay in the stored domain: the SR image is written with the source's dtype, Bits Stored
and Rescale Slope/Intercept, so modality values (e.g. Hounsfield units) keep meaning what they meant.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DSfloat

DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
_PREAMBLE = 128
# Elements that describe the source's pixels and would be wrong for the SR image.
_STALE = ("SmallestImagePixelValue", "LargestImagePixelValue", "SmallestPixelValueInSeries",
          "LargestPixelValueInSeries", "IconImageSequence")


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
    """A single-frame DICOM image and its stored pixel values [C, H, W] (C = 1, or 3 for colour).

    Raises ValueError naming the file when it is not DICOM, has no pixel data, is multi-frame, or its
    pixel data cannot be decoded.
    """
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError) as error:
        raise ValueError(f"{path} cannot be read as DICOM ({error}): is it a DICOM file, and complete?") from error
    if "PixelData" not in dataset:
        raise ValueError(
            f"{path} has no pixel data (a DICOMDIR, report or presentation state, not an image): leave it out"
        )
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        raise ValueError(f"{path} is a multi-frame DICOM: convert it to single-frame files first")
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # pydicom's decoders raise many types; all mean "cannot decode these pixels"
        syntax = dataset.file_meta.get("TransferSyntaxUID", "unknown")
        raise ValueError(
            f"{path}: its pixel data cannot be decoded (transfer syntax {getattr(syntax, 'name', syntax)}: "
            f"{error}); install the decoder pydicom names (e.g. pylibjpeg) or decompress the file"
        ) from error
    return dataset, pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)


def sort_series(items: Sequence[tuple[Path, Dataset]]) -> dict[str, list[tuple[Path, Dataset]]]:
    """Group DICOM files by Series Instance UID, each series ordered by Instance Number, then file name."""
    series: dict[str, list[tuple[Path, Dataset]]] = {}
    for path, dataset in items:
        series.setdefault(str(dataset.get("SeriesInstanceUID", path.parent)), []).append((path, dataset))
    for members in series.values():
        members.sort(key=lambda item: (int(item[1].get("InstanceNumber") or 0), item[0].name))
    return series


def derive(source: Dataset, pixels: np.ndarray, scale: int, series_uid: str, note: str) -> Dataset:
    """The SR image as a new DICOM instance of a new series, derived from `source`.

    pixels: [C, scale*H, scale*W] stored values of the source's dtype. New SOP Instance UID (also in the
    file meta) and the given Series Instance UID; Image Type DERIVED\\SECONDARY; Rows/Columns, Pixel
    Spacing and Image Position (Patient) for the finer grid (pixel centres: the SR pixel (0, 0) sits
    (scale-1)/(2 scale) of a source pixel up and left of the source's); Series Description, Derivation
    Description and Image Comments say that it is a model estimate; Source Image Sequence points at
    the source instance. Everything else (patient, study, Rescale Slope/Intercept, windows) is kept.
    """
    derived = copy.deepcopy(source)
    for keyword in _STALE:
        if keyword in derived:
            delattr(derived, keyword)
    photometric = source.PhotometricInterpretation if pixels.shape[0] == 1 else "RGB"
    array = pixels[0] if pixels.shape[0] == 1 else np.moveaxis(pixels, 0, -1)
    derived.file_meta = _file_meta(source)
    derived.set_pixel_data(np.ascontiguousarray(array), photometric, int(source.BitsStored))
    derived.file_meta.MediaStorageSOPInstanceUID = derived.SOPInstanceUID
    derived.SeriesInstanceUID = series_uid
    image_type = list(source.get("ImageType", []))
    derived.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
    _finer_geometry(derived, source, scale)
    derived.SeriesDescription = f"SR {scale}x model estimate {source.get('SeriesDescription', '')}".strip()[:64]
    derived.DerivationDescription = note[:1024]
    derived.ImageComments = note
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.get("SOPClassUID", MR_IMAGE_STORAGE)
    reference.ReferencedSOPInstanceUID = source.get("SOPInstanceUID", "")
    derived.SourceImageSequence = [reference]
    now = datetime.datetime.now()
    derived.InstanceCreationDate, derived.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    return derived


def new_series_uid() -> str:
    return generate_uid()


def write_dicom(path: Path, dataset: Dataset) -> None:
    dataset.save_as(path, enforce_file_format=True)


def _file_meta(source: Dataset) -> FileMetaDataset:
    """The source's file meta, or a fresh one; the pixels are written uncompressed (explicit VR LE)."""
    meta = copy.deepcopy(source.file_meta) if getattr(source, "file_meta", None) else FileMetaDataset()
    meta.MediaStorageSOPClassUID = source.get("SOPClassUID", MR_IMAGE_STORAGE)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _finer_geometry(derived: Dataset, source: Dataset, scale: int) -> None:
    """Pixel spacing divided by `scale`; Image Position moved to the centre of the first finer pixel."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        if keyword in source:
            setattr(derived, keyword, [_ds(float(value) / scale) for value in getattr(source, keyword)])
    if {"PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient"} <= set(source.dir()):
        row_spacing, column_spacing = (float(value) for value in source.PixelSpacing)
        orientation = np.array([float(value) for value in source.ImageOrientationPatient])
        shift = -(scale - 1) / (2 * scale)
        position = np.array([float(value) for value in source.ImagePositionPatient]) + shift * (
            column_spacing * orientation[:3] + row_spacing * orientation[3:]
        )
        derived.ImagePositionPatient = [_ds(value) for value in position]


def _ds(value: float) -> DSfloat:
    """A decimal string (DS) value, formatted to fit DICOM's 16 characters."""
    return DSfloat(value, auto_format=True)
