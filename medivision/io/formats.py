"""Reading and writing the file formats `medivision.enhance` serves: images, DICOM and NIfTI."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medivision.io.dicom import looks_like_dicom
from medivision.io.images import IMAGE_SUFFIXES, OUTPUT_SUFFIXES, output_suffix
from medivision.io.nifti import is_nifti

# Every SR output carries this, in whatever metadata its format has.
# The first 64 characters carry the point, for fields that are short (NIfTI descrip holds 79).
ESTIMATE_NOTE = "MediVision {scale}x super-resolution: a model estimate, not a measurement (model {model})"
# ... and every uncertainty map this.
UNCERTAINTY_NOTE = ("MediVision uncertainty map: std of 8 self-ensemble outputs of the {scale}x estimate, not an "
                    "error bar (model {model})")


@dataclass(frozen=True)
class Format:
    """An input format of enhance: how a file is recognised, and what its output may be called."""

    described: str  # for messages
    plan_list: str  # the list of medivision.io.outputs.Plan its (input, output) pairs go to
    matches: Callable[[Path], bool]
    output_name: Callable[[Path, str], str]  # (input file, dicom_format) -> the output's file name
    output_problem: Callable[[Path, str], str | None]  # (output file, dicom_format) -> what is wrong with it


def _image_output_problem(target: Path, dicom_format: str) -> str | None:
    if target.suffix.lower() not in OUTPUT_SUFFIXES:
        return "name a .png or .tif file (lossless) or an existing folder for an image"
    return None


def _dicom_output_name(source: Path, dicom_format: str) -> str:
    if dicom_format == "png":
        return (source.stem if source.suffix.lower() in (".dcm", ".dicom") else source.name) + ".png"
    return source.name


def _dicom_output_problem(target: Path, dicom_format: str) -> str | None:
    if dicom_format == "png" and target.suffix.lower() != ".png":
        return "name a .png file with dicom_format=png"
    if dicom_format == "dicom" and (target.suffix.lower() in OUTPUT_SUFFIXES or is_nifti(target)):
        return "a DICOM input writes DICOM; pass dicom_format=png for a PNG"
    return None


# Checked in this order; DICOM files without a .dcm suffix are known by their preamble.
FORMATS = {
    "image": Format("PNG/JPEG/TIFF images", "images", lambda path: path.suffix.lower() in IMAGE_SUFFIXES,
                    lambda source, _: source.stem + output_suffix(source), _image_output_problem),
    "nifti": Format("NIfTI volumes (.nii/.nii.gz)", "nifti", is_nifti, lambda source, _: source.name,
                    lambda target, _: None if is_nifti(target) else
                    "name a .nii or .nii.gz file or an existing folder for a NIfTI input"),
    "dicom": Format("DICOM files (.dcm or with a DICM preamble)", "dicom", looks_like_dicom, _dicom_output_name,
                    _dicom_output_problem),
}


def detect(path: Path) -> str | None:
    """The format of a file, a key of FORMATS, or None when it is none of them."""
    return next((name for name, format in FORMATS.items() if format.matches(path)), None)
