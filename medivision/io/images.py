"""PNG, JPEG, TIFF and BMP files in their stored dtype: 8-bit gray or RGB, 16-bit gray, 32-bit integer or float.

The one image reader: training's data sources and enhance both read through read_unit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from medivision.io.intensity import IntensityMap

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
# Written files: lossless formats only, so the SR image gets no compression artifacts on top.
OUTPUT_SUFFIXES = frozenset({".png", ".tif", ".tiff"})
_TIFF_DESCRIPTION, _TIFF_SOFTWARE = 270, 305


def read_image(path: Path, gray: bool = False) -> np.ndarray:
    """An image file as its stored values: [C, H, W] with C = 1 (gray) or 3 (RGB); C = 1 always with `gray`.

    dtype: uint8 for 8-bit files, uint16 for 16-bit ones, int32 for 32-bit integer and float32 for
    float TIFFs. Alpha channels and palettes are dropped (converted to gray or RGB): SR has nothing to
    say about transparency. `gray` turns colour into luminance (PIL's ITU-R 601-2 conversion, "L"). Multi-page
    TIFFs are refused, one image per file. Raises ValueError naming the file for anything PIL cannot decode.
    """
    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) > 1:
                raise ValueError(f"{path} holds {image.n_frames} pages: give one image per file")
            if image.mode.startswith("I;16"):
                pixels = np.asarray(image, dtype=np.uint16)
            elif image.mode in ("I", "F", "L") or (image.mode == "RGB" and not gray):
                pixels = np.asarray(image)
            else:
                as_gray = gray or image.mode in ("1", "LA", "La") or (image.mode == "P" and _gray_palette(image))
                pixels = np.asarray(image.convert("L" if as_gray else "RGB"))
    except (OSError, SyntaxError) as error:  # PIL reports undecodable files as OSError or SyntaxError
        raise ValueError(f"{path} cannot be read as an image: {error}") from error
    if pixels.ndim != 2 and pixels.ndim != 3 or pixels.size == 0:
        raise ValueError(f"{path} decoded to an array of shape {pixels.shape}, not a 2-D image")
    return pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)


def read_unit(path: Path, intensity: str = "minmax", gray: bool = False) -> tuple[np.ndarray, IntensityMap]:
    """An image file as the network sees it: float32 [C, H, W] in [0, 1] (see read_image), and the intensity
    map (medivision.io.intensity) that took it there and takes outputs back to stored values."""
    pixels = read_image(path, gray)
    mapping = IntensityMap.fit(pixels, intensity)
    return mapping.to_unit(pixels), mapping


def output_suffix(path: Path) -> str:
    """The suffix an image's SR output gets when the user named no file: its own, but PNG for JPEG and BMP."""
    return path.suffix if path.suffix.lower() in OUTPUT_SUFFIXES else ".png"


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
