"""What the format handlers hand to enhance: jobs of unit images that know how to write their results back, and
the skipping of files that fail, with the reason, while the rest is done."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np

from medivision.io.formats import ESTIMATE_NOTE, UNCERTAINTY_NOTE
from medivision.io.intensity import IntensityMap

logger = logging.getLogger(__name__)
T = TypeVar("T")
Skip = Callable[[Path, str], None]  # record that a file was skipped, and why


@dataclass(frozen=True)
class Notes:
    """The labels of a run's outputs: the SR images' and, with uncertainty maps, theirs ("" without)."""

    image: str
    uncertainty: str

    @classmethod
    def of(cls, scale: int, model: str, uncertainty: bool) -> Notes:
        """The labels of a `scale`x model's outputs, naming `model`; with `uncertainty`, its maps' too."""
        return cls(ESTIMATE_NOTE.format(scale=scale, model=model),
                   UNCERTAINTY_NOTE.format(scale=scale, model=model) if uncertainty else "")


class Result(NamedTuple):
    """The model's answer for N of a job's images, SR [N, C, s*h, s*w] and the ensemble's spread of the same shape
    (None without an uncertainty map): float32 in [0, 1] from the model, and as the job's `store` turns them,
    in the values its writer takes (the file's stored values, mostly)."""

    sr: np.ndarray
    spread: np.ndarray | None


class Written(NamedTuple):
    """The files a job wrote: its output, and its uncertainty map ([] without)."""

    outputs: list[Path]
    maps: list[Path]


class Job(NamedTuple):
    """One input file as the network sees it: `unit` float32 [N, C, h, w] in [0, 1] (N images, slices or frames,
    mapped by one intensity map); `store`, which turns the model's Result for some of them into the values the
    file is written in (batch by batch, so a volume's float outputs are never held whole); and `write`, which
    writes the stored Result of all N."""

    source: Path
    unit: np.ndarray
    store: Callable[[Result], Result]
    write: Callable[[Result], Written]


def to_stored(mapping: IntensityMap, result: Result) -> Result:
    """The model's Result in `mapping`'s stored values; the spread by the map of differences (IntensityMap.spread)."""
    spread = None if result.spread is None else mapping.spread().from_unit(result.spread)
    return Result(mapping.from_unit(result.sr), spread)


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
