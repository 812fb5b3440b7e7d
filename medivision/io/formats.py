"""Reading and writing the file formats `medivision.enhance` serves: images, DICOM and NIfTI."""

from pathlib import Path

from medivision.io.dicom import looks_like_dicom
from medivision.io.images import IMAGE_SUFFIXES
from medivision.io.nifti import is_nifti

# Every SR output carries this, in whatever metadata its format has.
# The first 64 characters carry the point, for fields that are short (NIfTI descrip holds 79).
ESTIMATE_NOTE = "MediVision {scale}x super-resolution: a model estimate, not a measurement (model {model})"
# ... and every uncertainty map this.
UNCERTAINTY_NOTE = ("MediVision uncertainty map: std of 8 self-ensemble outputs of the {scale}x estimate, not an "
                    "error bar (model {model})")


def detect(path: Path) -> str | None:
    """The kind of file: "image", "dicom", "nifti" by its name (DICOM also by its preamble), or None."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "image"
    if is_nifti(path):
        return "nifti"
    if looks_like_dicom(path):
        return "dicom"
    return None
