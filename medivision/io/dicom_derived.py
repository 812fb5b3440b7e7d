"""The DICOM object of a super-resolved image: a derived instance in a new series, saying how it was made.

It follows DICOM's conventions for derived images (PS3.3 C.7.6.1.1.3, C.7.6.16.2.6; codes from PS3.16):
- a new series beside the source's: new Series Instance UID, Series Number = the source's + 1000 (or 1000
  where it has none that is an integer), Series Date/Time = when the run started; new SOP Instance UID,
  Instance Creation and Content Date/Time = now. The new UIDs are derived from the source's UIDs and the
  model that made the images (pydicom's generate_uid with those as entropy), so enhancing a series again with
  the same model gives the same series and instances: a PACS keeps one copy, not two;
- Image Type DERIVED\\SECONDARY (enhanced multi-frame objects, whose value 2 is PRIMARY by their IOD:
  DERIVED with value 2 kept, and every frame's Frame Type DERIVED);
- Derivation Code Sequence (113085, DCM, "Spatial resampling"), CID 7203 Image Derivation;
- Source Image Sequence naming the source instance, with Purpose of Reference (121322, DCM, "Source image
  for image processing operation"), CID 7202. Enhanced objects carry both, per frame, in the Derivation
  Image functional group (with the source's frame number); other objects at the top level.
- Private elements are dropped: vendors keep acquisition and pixel details there (sizes, scaling, raw
  headers) that are wrong for the finer image, and their layout is unknown, so they cannot be updated.
  Overlay planes (groups 6000-601E) are dropped: their bits lie on the source's pixel grid.
- Pixel values stay stored values (same dtype, Bits Stored, Rescale Slope/Intercept), written Explicit VR
  Little Endian, uncompressed. A source that was lossy compressed stays flagged Lossy Image Compression 01:
  one that says so, or one in a lossy transfer syntax (JPEG baseline/extended, JPEG-LS near-lossless), or in
  one that may be lossy (JPEG 2000, HTJ2K) unless it says Lossy Image Compression 00.
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSNearLossless,
    generate_uid,
)
from pydicom.valuerep import DSfloat

from medivision.io.dicom import integer

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SERIES_NUMBER_OFFSET = 1000
UNCERTAINTY_SERIES_OFFSET = 2000  # the series of the SR images' uncertainty maps
DERIVATION: Code = codes.DCM.SpatialResampling  # (113085, DCM, "Spatial resampling"), CID 7203
PURPOSE: Code = codes.DCM.SourceImageForImageProcessingOperation  # (121322, DCM, ...), CID 7202
# Elements that describe the source's pixels and would be wrong for the SR image.
_STALE = ("PixelData", "SmallestImagePixelValue", "LargestImagePixelValue", "SmallestPixelValueInSeries",
          "LargestPixelValueInSeries", "IconImageSequence")
_WORD_BYTES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}  # VRs whose values pydicom keeps as raw bytes
_OVERLAY_GROUPS = range(0x6000, 0x601F, 2)  # the 16 overlay planes, PS3.3 C.9.2
# Lossy Image Compression Method (PS3.3 C.7.6.1.1.5.1) of the transfer syntaxes that are always lossy ...
_LOSSY = {JPEGBaseline8Bit: "ISO_10918_1", JPEGExtended12Bit: "ISO_10918_1", JPEGLSNearLossless: "ISO_14495_1"}
# ... and of those that may be lossy or not: lossy unless the source says Lossy Image Compression 00.
_MAYBE_LOSSY = {JPEG2000: "ISO_15444_1", HTJ2K: "ISO_15444_15"}


@dataclass(frozen=True)
class DerivedSeries:
    """The new series that the SR images of one source series go to."""

    uid: str
    number: int
    date: str  # DA, YYYYMMDD
    time: str  # TM, HHMMSS

    @classmethod
    def beside(cls, source: Dataset, start: datetime.datetime, offset: int = SERIES_NUMBER_OFFSET,
               model: str = "") -> DerivedSeries:
        """A new series for the SR images of `source`'s series, numbered `offset` after it, dated `start`; its UID
        the same for the same source series, offset and `model` (what made the images), random where the source
        has no Series Instance UID."""
        number = integer(source, "SeriesNumber") + offset
        return cls(_uid_from(source.get("SeriesInstanceUID"), str(offset), model), number, start.strftime("%Y%m%d"),
                   start.strftime("%H%M%S"))


def derive(source: Dataset, pixels: np.ndarray, scale: int, series: DerivedSeries, note: str) -> Dataset:
    """The SR image as a new DICOM instance of `series`, derived from `source` (see the module docstring).

    pixels: [F, C, scale*H, scale*W] stored values of the source's dtype (F frames as in the source, C = 1 or
    3). Rows/Columns, Pixel Spacing and Image Position (Patient), at the top level and in every functional
    group, are those of the finer grid (pixel centres: the SR pixel (0, 0) sits (scale-1)/(2 scale) of a
    source pixel up and left of the source's). Series Description, Derivation Description and Image Comments
    say that it is a model estimate. Everything else public (patient, study, Rescale Slope/Intercept,
    windows) is kept.
    """
    derived = _public_copy(source)
    derived.file_meta = _file_meta(source)
    _set_pixels(derived, source, pixels)
    now = datetime.datetime.now()
    derived.SeriesInstanceUID, derived.SeriesNumber = series.uid, series.number
    derived.SOPInstanceUID = _uid_from(source.get("SOPInstanceUID"), series.uid)
    derived.file_meta.MediaStorageSOPInstanceUID = derived.SOPInstanceUID
    derived.SeriesDate, derived.SeriesTime = series.date, series.time
    derived.InstanceCreationDate = derived.ContentDate = now.strftime("%Y%m%d")
    derived.InstanceCreationTime = derived.ContentTime = now.strftime("%H%M%S")
    _keep_lossy_flag(derived, source)
    grouped = "SharedFunctionalGroupsSequence" in source or "PerFrameFunctionalGroupsSequence" in source
    enhanced = grouped or "Enhanced" in getattr(source.get("SOPClassUID"), "name", "")
    image_type = list(source.get("ImageType", []))
    derived.ImageType = ["DERIVED", image_type[1] if enhanced and len(image_type) > 1 else "SECONDARY",
                         *image_type[2:]]
    _finer_geometry(derived, scale)
    derived.SeriesDescription = f"SR {scale}x model estimate {source.get('SeriesDescription', '')}".strip()[:64]
    derived.ImageComments = note
    if grouped:
        _derived_frames(derived, source, scale, note)
    else:  # also an enhanced object that lacks its functional groups: the derivation is kept somewhere
        derived.update(_derivation(source, note))
    if enhanced:  # required of enhanced objects whose Image Type is DERIVED
        derived.SourceImageEvidenceSequence = [_evidence(source)]
    return derived


def derive_uncertainty(source: Dataset, pixels: np.ndarray, scale: int, series: DerivedSeries, note: str) -> Dataset:
    """The uncertainty map of an SR image as a DICOM instance of its own `series`, made as `derive` makes the SR
    image and labelled as what it is (Series Description, Image Comments: `note`). pixels: the spread in stored
    units, no offset, so Rescale Intercept is 0 and the source's display windows, made for the image, are
    dropped."""
    derived = derive(source, pixels, scale, series, note)
    described = source.get("SeriesDescription", "")
    derived.SeriesDescription = f"Uncertainty of SR {scale}x estimate {described}".strip()[:64]
    if "RescaleIntercept" in derived:
        derived.RescaleIntercept = 0
    for keyword in ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTSequence"):
        if keyword in derived:
            delattr(derived, keyword)
    return derived


def _public_copy(source: Dataset) -> Dataset:
    """A copy of `source` without private elements, overlays or stale pixel elements, its values little endian.

    pydicom decodes numbers and text from any encoding, but keeps OW/OF/OD/OL/OV values as the bytes read:
    from a big endian file these are swapped here, and UN values (of unknown structure) are dropped.
    """
    derived = Dataset()
    for element in source:  # iterating decodes each element; the copy forgets the source's encoding
        if element.keyword not in _STALE and not element.tag.is_private and element.tag.group not in _OVERLAY_GROUPS:
            derived.add(copy.deepcopy(element))
    derived.remove_private_tags()  # inside sequences too
    if source.original_encoding[1] is False:
        derived.walk(_to_little_endian)
    return derived


def _to_little_endian(dataset: Dataset, element) -> None:
    if element.VR == "UN":
        del dataset[element.tag]
    elif element.VR in _WORD_BYTES and element.value:
        width = _WORD_BYTES[element.VR]
        element.value = np.frombuffer(element.value, f">u{width}").astype(f"<u{width}").tobytes()


def _uid_from(source_uid: str | None, *context: str) -> str:
    """A UID determined by `source_uid` and `context`; a random one without a source UID."""
    return generate_uid(entropy_srcs=[str(source_uid), *context]) if source_uid else generate_uid()


def _file_meta(source: Dataset) -> FileMetaDataset:
    """A fresh file meta for an uncompressed Explicit VR Little Endian file, written by pydicom."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = source.get("SOPClassUID", MR_IMAGE_STORAGE)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _set_pixels(derived: Dataset, source: Dataset, pixels: np.ndarray) -> None:
    """Pixel Data and the Image Pixel module for `pixels` [F, C, H, W], and a new SOP Instance UID."""
    colour = pixels.shape[1] == 3
    array = np.moveaxis(pixels, 1, -1) if colour else pixels[:, 0]
    if "NumberOfFrames" not in source:  # pydicom reads a leading axis as frames
        array = array[0]
    photometric = "RGB" if colour else source.PhotometricInterpretation  # pydicom decodes YBR to RGB
    derived.set_pixel_data(np.ascontiguousarray(array), photometric, int(source.BitsStored))
    derived.SOPClassUID = derived.file_meta.MediaStorageSOPClassUID


def _keep_lossy_flag(derived: Dataset, source: Dataset) -> None:
    """Pixels once lossy compressed stay flagged so, though this file is not compressed (PS3.3 C.7.6.1.1.5).

    A flag 01 of the source is copied with its method; see the module docstring for the transfer syntaxes.
    """
    syntax = source.file_meta.get("TransferSyntaxUID") if getattr(source, "file_meta", None) else None
    said = source.get("LossyImageCompression")
    method = _LOSSY.get(syntax) or (_MAYBE_LOSSY.get(syntax) if said != "00" else None)
    if method is not None and said != "01":
        derived.LossyImageCompression = "01"
        derived.LossyImageCompressionMethod = method


def _derivation(source: Dataset, note: str, frame: int | None = None) -> Dataset:
    """Derivation Description, Derivation Code Sequence and Source Image Sequence, for `source` (or its frame)."""
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.get("SOPClassUID", MR_IMAGE_STORAGE)
    reference.ReferencedSOPInstanceUID = source.get("SOPInstanceUID", "")
    if frame is not None:
        reference.ReferencedFrameNumber = frame
    reference.PurposeOfReferenceCodeSequence = [_code(PURPOSE)]
    item = Dataset()
    item.DerivationDescription = note[:1024]
    item.DerivationCodeSequence = [_code(DERIVATION)]
    item.SourceImageSequence = [reference]
    return item


def _evidence(source: Dataset) -> Dataset:
    """A Source Image Evidence item (study, series, instance) naming `source`."""
    instance = Dataset()
    instance.ReferencedSOPClassUID = source.get("SOPClassUID", MR_IMAGE_STORAGE)
    instance.ReferencedSOPInstanceUID = source.get("SOPInstanceUID", "")
    series = Dataset()
    series.SeriesInstanceUID = source.get("SeriesInstanceUID", "")
    series.ReferencedSOPSequence = [instance]
    study = Dataset()
    study.StudyInstanceUID = source.get("StudyInstanceUID", "")
    study.ReferencedSeriesSequence = [series]
    return study


def _code(code: Code) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code.value, code.scheme_designator, code.meaning
    return item


def _derived_frames(derived: Dataset, source: Dataset, scale: int, note: str) -> None:
    """Functional groups of an enhanced multi-frame object: finer grid, Frame Type DERIVED, derivation per frame."""
    shared = (derived.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    frames = list(derived.get("PerFrameFunctionalGroupsSequence", []))
    for number, group in enumerate(frames, start=1):
        _finer_geometry(group, scale, shared)
        group.DerivationImageSequence = [_derivation(source, note, number)]
    _finer_geometry(shared, scale, shared)
    if frames:  # a functional group is shared or per frame, never both (PS3.3 C.7.6.16)
        shared.pop("DerivationImageSequence", None)
    else:
        shared.DerivationImageSequence = [_derivation(source, note)]
    for group in [shared, *frames]:
        for element in group:
            if element.keyword.endswith("FrameTypeSequence") and element.value:
                element.value[0].FrameType = ["DERIVED", *list(element.value[0].FrameType)[1:]]


def _finer_geometry(item: Dataset, scale: int, shared: Dataset | None = None) -> None:
    """Pixel spacing divided by `scale` and Image Position moved to the centre of the first finer pixel.

    `item` is a dataset, or a frame's functional groups (then the values it lacks come from `shared`, the
    shared functional groups, and the spacing is changed where it is stored: only once, in `shared` itself).
    """
    spacing = _value(item, shared, "PixelMeasuresSequence", "PixelSpacing")
    orientation = _value(item, shared, "PlaneOrientationSequence", "ImageOrientationPatient")
    holder = _holder(item, "PlanePositionSequence", "ImagePositionPatient")
    if spacing is not None and orientation is not None and holder is not None:
        row_spacing, column_spacing = (float(value) for value in spacing)
        axes = np.array([float(value) for value in orientation])
        shift = -(scale - 1) / (2 * scale) * (column_spacing * axes[:3] + row_spacing * axes[3:])
        holder.ImagePositionPatient = [_ds(value) for value in np.array(
            [float(value) for value in holder.ImagePositionPatient]) + shift]
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        owner = _holder(item, "PixelMeasuresSequence", keyword)
        if owner is not None:
            setattr(owner, keyword, [_ds(float(value) / scale) for value in getattr(owner, keyword)])


def _holder(item: Dataset, macro: str, keyword: str) -> Dataset | None:
    """The dataset holding `keyword`: `item` itself, or the first item of its `macro` sequence."""
    if keyword in item:
        return item
    nested = item.get(macro)
    return nested[0] if nested and keyword in nested[0] else None


def _value(item: Dataset, shared: Dataset | None, macro: str, keyword: str):
    for candidate in (item, shared):
        holder = None if candidate is None else _holder(candidate, macro, keyword)
        if holder is not None:
            return getattr(holder, keyword)
    return None


def _ds(value: float) -> DSfloat:
    """A decimal string (DS) value, formatted to fit DICOM's 16 characters."""
    return DSfloat(value, auto_format=True)
