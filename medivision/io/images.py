"""PNG, JPEG and TIFF files in their stored dtype: 8-bit gray or RGB, 16-bit gray, 32-bit integer or float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
# Written files: lossless formats only, so the SR image gets no compression artifacts on top.
OUTPUT_SUFFIXES = frozenset({".png", ".tif", ".tiff"})
_TIFF_DESCRIPTION, _TIFF_SOFTWARE = 270, 305


def read_image(path: Path) -> np.ndarray:
    """An image file as its stored values: [C, H, W] with C = 1 (gray) or 3 (RGB).

    dtype: uint8 for 8-bit files, uint16 for 16-bit ones, int32 for 32-bit integer and float32 for
    float TIFFs. Alpha channels and palettes are dropped (converted to gray or RGB): SR has nothing to
    say about transparency. Multi-page TIFFs are refused, one image per file.
    """
    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) > 1:
                raise ValueError(f"{path} holds {image.n_frames} pages: give one image per file")
            if image.mode.startswith("I;16"):
                pixels = np.asarray(image, dtype=np.uint16)
            elif image.mode in ("I", "F", "L", "RGB"):
                pixels = np.asarray(image)
            else:
                gray = image.mode in ("1", "LA", "La") or (image.mode == "P" and _gray_palette(image))
                pixels = np.asarray(image.convert("L" if gray else "RGB"))
    except (OSError, SyntaxError) as error:  # PIL reports undecodable files as OSError or SyntaxError
        raise ValueError(f"{path} cannot be read as an image: {error}") from error
    return pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)


def output_suffix(path: Path) -> str:
    """The suffix an image's SR output gets when the user named no file: its own, but PNG for JPEG."""
    suffix = path.suffix.lower()
    return ".png" if suffix in (".jpg", ".jpeg") else path.suffix


def write_image(path: Path, pixels: np.ndarray, note: str, intensity: str) -> None:
    """Write [C, H, W] stored values (as read_image returns them) to a PNG or TIFF file.

    `note` (that the image is a model estimate) and `intensity` (how stored values relate to the
    input's) go into the PNG text chunks "Description" and "Intensity", or the TIFF ImageDescription.
    32-bit integer images whose values fit 16 bits are written as 16-bit PNG; other 32-bit and float
    images need TIFF.
    """
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ValueError(
            f"output={path}: write images as .png or .tif (lossless; JPEG would add compression artifacts)"
        )
    array = pixels[0] if pixels.shape[0] == 1 else np.moveaxis(pixels, 0, -1)
    if suffix == ".png" and array.dtype == np.int32:
        if array.min() < 0 or array.max() > 65535:
            raise ValueError(f"output={path}: 32-bit values outside 0..65535 do not fit a PNG; write .tif")
        array = array.astype(np.uint16)
    if suffix == ".png" and array.dtype == np.float32:
        raise ValueError(f"output={path}: a float image does not fit a PNG; write .tif")
    image = Image.fromarray(array)
    if suffix == ".png":
        info = PngInfo()
        info.add_text("Description", note)
        info.add_text("Intensity", intensity)
        info.add_text("Software", "MediVision")
        image.save(path, pnginfo=info)
    else:
        image.save(path, tiffinfo={_TIFF_DESCRIPTION: f"{note}. {intensity}", _TIFF_SOFTWARE: "MediVision"})


def _gray_palette(image: Image.Image) -> bool:
    colors = np.asarray(image.convert("RGB"))
    return bool((colors[..., 0] == colors[..., 1]).all() and (colors[..., 1] == colors[..., 2]).all())
