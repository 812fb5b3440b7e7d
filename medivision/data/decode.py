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

from medivision.io.images import read_unit

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def read_gray(path: str | os.PathLike, intensity: str = "minmax") -> np.ndarray:
    """An image file as a training image: float32 [H, W] in [0, 1].

    Read by the one image reader, as luminance, and mapped to [0, 1] by the intensity policy
    (medivision.io.images.read_unit, medivision.io.intensity): a gray file exactly as enhance reads it (enhance
    keeps colour files' channels, one map for all three).
    """
    unit, _ = read_unit(Path(path), intensity, gray=True)
    return unit[0]


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
    paths: Sequence[str | os.PathLike], size: int = 128, intensity: str = "minmax", workers: int | None = None
) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Decode image files into HR arrays, skipping the ones that fail.

    Returns (hr uint8 [N, size, size], indices into `paths` of the N decoded files, [(path, reason)]
    for each file that could not be decoded). Reporting the skipped files is left to the caller so a
    cached result can report them again.
    """

    def decode_one(path: str | os.PathLike) -> np.ndarray | str:
        try:
            return to_hr(read_gray(path, intensity), size)
        except Exception as err:  # any file that fails to decode is skipped, not fatal
            return skip_reason(err)

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


def skip_reason(error: Exception) -> str:
    """Why a file was skipped: the underlying error (a reader's ValueError wraps what the decoder raised)."""
    cause = error.__cause__ or error
    return f"{type(cause).__name__}: {cause}"
