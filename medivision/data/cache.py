"""Keep decoded data sets as one tensor file, keyed by the input files and preprocessing settings."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

# Bump when the cached content or its layout changes, so old cache files stop matching.
FORMAT_VERSION = 1


def cache_key(files: Sequence[str | os.PathLike], settings: Mapping[str, Any]) -> str:
    """Hash of the sorted file list with each file's size and mtime, plus the settings.

    Touching, replacing, adding or removing a file, or changing a setting, gives a new key.
    """
    digest = hashlib.sha256(json.dumps({"format": FORMAT_VERSION, **settings}, sort_keys=True).encode())
    for path in sorted(str(Path(f).absolute()) for f in files):
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def load_or_build(path: Path, build: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """Load the cached dict at `path`, or build and save it. Returns (data, whether the cache was hit).

    The file holds only tensors, strings and numbers, so it loads with weights_only=True: a file that
    needs anything else (a tampered one, whose unpickling would run code) is refused, not run. A cache
    file that cannot be loaded is rebuilt, with a warning: it holds nothing that cannot be decoded again.
    """
    if path.is_file():
        try:
            data = torch.load(path, weights_only=True)
        except Exception as error:  # unpickler, zip reader and torch errors come with any type
            warnings.warn(f"data cache {path} cannot be loaded ({type(error).__name__}: "
                          f"{str(error).strip().splitlines()[0]}); rebuilding it", stacklevel=2)
        else:
            logger.info("data cache hit: %s", path)
            return data, True
    data = build()
    save_atomic(data, path)
    logger.info("data cache built: %s", path)
    return data, False


def save_atomic(data: dict[str, Any], path: Path) -> None:
    """torch.save to a temporary file next to `path`, flush it to disk, then rename it into place.

    Readers, including other DDP ranks, see either the previous file (or none) or a complete new one,
    also after a crash or a kill in the middle of writing, which leaves only a hidden .NAME.*.tmp file.
    The file gets the permissions the umask gives new files (mkstemp would make it private).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        with open(temporary, "xb") as file:
            torch.save(data, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
