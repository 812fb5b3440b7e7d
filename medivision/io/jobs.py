"""What the format handlers hand to enhance: jobs of unit images that know how to write their results back, and
the skipping of files that fail, with the reason, while the rest is done."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np

logger = logging.getLogger(__name__)
T = TypeVar("T")
Skip = Callable[[Path, str], None]  # record that a file was skipped, and why


@dataclass(frozen=True)
class Notes:
    """The labels of a run's outputs: the SR images' and, with uncertainty maps, theirs ("" without)."""

    image: str
    uncertainty: str


class Result(NamedTuple):
    """The model's answer for a job's N unit images: SR float32 [N, C, s*h, s*w] in [0, 1], and the ensemble's
    spread of the same shape (None without an uncertainty map)."""

    sr: np.ndarray
    spread: np.ndarray | None


class Written(NamedTuple):
    """The files a job wrote: its output, and its uncertainty map ([] without)."""

    outputs: list[Path]
    maps: list[Path]


class Job(NamedTuple):
    """One input file as the network sees it: `unit` float32 [N, C, h, w] in [0, 1] (N images, slices or frames,
    mapped by one intensity map), and `write`, which maps a Result back to stored values and writes the files."""

    source: Path
    unit: np.ndarray
    write: Callable[[Result], Written]


def attempt(skip: Skip, sources: list[Path], work: Callable[[], T]) -> T | None:
    """work()'s result, or None when it failed: the files it was for are skipped with the reason, and the run
    goes on. `sources` is one file, or the files of a DICOM series or intensity map, which fail together.

    ValueError is bad input, said in one line by the reader or writer. Anything else (a decoder, the model
    on an odd image, a full disk, or a bug) is logged with its traceback, so that no failure goes unseen;
    KeyboardInterrupt and SystemExit are not caught.
    """
    try:
        return work()
    except ValueError as error:
        message, traceback = str(error), False
    except Exception as error:
        message, traceback = f"{type(error).__name__}: {error}".replace("\n", " "), True
    together = f" ({len(sources)} files of one series, skipped together)" if len(sources) > 1 else ""
    for source in sources:
        reason = (message if str(source) in message else f"{source}: {message}") + together
        logger.warning("skipped %s", reason, exc_info=traceback and source == sources[0])
        skip(source, reason)
    return None
