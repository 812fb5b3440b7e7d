"""Decode image files into square uint8 HR arrays, in parallel, with progress and a skip list."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"})

# Modes whose samples exceed 8 bits; PIL's convert("L") would clip them at 255.
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})

T = TypeVar("T")
R = TypeVar("R")


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as grayscale.

    Returns float32 [H, W] in [0, 1]. 8-bit files (L, RGB, RGBA, P, ...) go through PIL's luminance
    conversion and are divided by 255; 16-bit files ("I;16*", "I") are divided by 65535 so their full
    range survives; float files ("F") carry no range convention and are divided by their own maximum
    when it exceeds 1. Raises on anything PIL cannot decode completely.
    """
    with Image.open(path) as img:
        if img.mode in _SIXTEEN_BIT_MODES:
            gray = np.asarray(img, dtype=np.float32) / 65535.0
        elif img.mode == "F":
            gray = np.nan_to_num(np.asarray(img, dtype=np.float32))
            peak = float(gray.max(initial=0.0))
            if peak > 1.0:
                gray = gray / peak
        else:
            gray = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    if gray.ndim != 2 or gray.size == 0:
        raise ValueError(f"decoded to an array of shape {gray.shape}, expected a 2-D image")
    return np.clip(gray, 0.0, 1.0)


def to_hr(gray: np.ndarray, size: int = 128) -> np.ndarray:
    """Pad a grayscale image to a centred square with zeros and resize it to `size` x `size`.

    gray: float [H, W] in [0, 1], any size. Returns uint8 [size, size] in [0, 255]. Resizing is PIL
    bicubic on float data, which widens its kernel when shrinking (antialiased) and keeps full
    precision until the final rounding.
    """
    height, width = gray.shape
    side = max(height, width)
    square = np.zeros((side, side), dtype=np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    square[top : top + height, left : left + width] = gray
    resized = Image.fromarray(square).resize((size, size), Image.Resampling.BICUBIC)
    # Bicubic overshoots near sharp edges; clip before rounding so values never wrap around.
    return np.rint(np.clip(np.asarray(resized), 0.0, 1.0) * 255.0).astype(np.uint8)


def map_with_progress(
    fn: Callable[[T], R], items: Sequence[T], what: str, workers: int | None = None
) -> list[R]:
    """Apply `fn` to every item on a thread pool, keeping order, logging progress every ~10% or 5 s.

    Threads rather than processes: PIL and numpy release the GIL while decoding and resizing, and
    threads avoid pickling every result back. On 2 cores this decodes 512x512 JPEGs as fast as a
    process pool.
    """
    total = len(items)
    step = max(1, total // 10)
    results: list[R] = []
    last_report = time.monotonic()
    with ThreadPoolExecutor(workers or available_cpus()) as pool:
        for done, result in enumerate(pool.map(fn, items), start=1):
            results.append(result)
            now = time.monotonic()
            if done % step == 0 or done == total or now - last_report > 5.0:
                logger.info("decoding %d/%d %s", done, total, what)
                last_report = now
    return results


def decode_images(
    paths: Sequence[str | os.PathLike], size: int = 128, workers: int | None = None
) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Decode image files into HR arrays, skipping the ones that fail.

    Returns (hr uint8 [N, size, size], indices into `paths` of the N decoded files, [(path, reason)]
    for each file that could not be decoded). Reporting the skipped files is left to the caller so a
    cached result can report them again.
    """

    def decode_one(path: str | os.PathLike) -> np.ndarray | str:
        try:
            return to_hr(read_gray(path), size)
        except Exception as err:  # any file that fails to decode is skipped, not fatal
            return f"{type(err).__name__}: {err}"

    results = map_with_progress(decode_one, paths, "images", workers)
    kept = [i for i, result in enumerate(results) if isinstance(result, np.ndarray)]
    failed = [(str(Path(paths[i])), result) for i, result in enumerate(results) if isinstance(result, str)]
    hr = np.stack([results[i] for i in kept]) if kept else np.zeros((0, size, size), dtype=np.uint8)
    return hr, kept, failed


def available_cpus() -> int:
    """CPU cores this process may run on: the number of decoding threads."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
