"""Turn a configured source into the cached data set: HR tensors, labels, source splits, provenance."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from medivision.data.cache import cache_key, load_or_build
from medivision.data.decode import decode_images
from medivision.data.real_scans import build_real_scans, real_scan_files
from medivision.data.sources import (
    DataError,
    ImageListing,
    folder_listing,
    kaggle_listing,
    mni152_file,
    tissue_files,
    volume_files,
)
from medivision.data.tissue import CSF_CLOSING, build_tissue_maps
from medivision.data.volumes import decode_volumes

if TYPE_CHECKING:
    from medivision.data.settings import Source

# How each item's split is stored: what the source says, before train/val/test assignment.
SOURCE_SPLIT_CODES = {"train": 0, "test": 2, None: -1}

Found = ImageListing | list[Path] | list[tuple[str, Path]]
# What load_source decodes, when: the files it reads, the settings that key the cache, and the build.
Plan = tuple[list[Path], dict[str, Any], Callable[[], dict[str, Any]]]


def find_source(source: str, root: str | Path | None) -> Found:
    """What a source consists of, found without decoding anything: the image listing (kaggle, folder), the
    NIfTI volumes (nifti, mni152; synth: the T1, GM and WM maps) or the real-scan benchmark's (group, file).
    `source` is one of SOURCES, checked where the config enters. Raises DataError naming data.root and the fix
    when it or its layout is wrong.
    """
    return SOURCES[source].find(root)


def load_source(settings: Source, found: Found) -> tuple[dict[str, Any], bool, Path]:
    """Load a source from the cache, decoding the files `find_source` found first when the cache has no matching
    file.

    Every file is read by the one reader of its format and mapped to [0, 1] by the `intensity` policy
    (medivision.io.intensity), as enhance reads it, before it is resized and stored as uint8.

    Returns (data, cache hit, cache file). data holds:
      hr           uint8 [N, 1, hr_size, hr_size] in [0, 255]; synth: [N, 4, ...], the tissue maps
                   (medivision.data.tissue)
      labels       int64 [N], indices into class_names
      splits       int8 [N], SOURCE_SPLIT_CODES (Kaggle Testing/ is 2, items without a split -1)
      slice_index  int64 [N], position of a volume slice along its axis; -1 for 2-D images
      paths        list[str], the file each item came from
      class_names  list[str]
      skipped      list[str], files that could not be read; skip_reasons says why
      num_files    int, files looked at (decoded or skipped)
    """
    files, keyed, build = SOURCES[settings.source].plan(settings, found)
    keyed = {"source": settings.source, "hr_size": settings.hr_size, "intensity": settings.intensity, **keyed}
    name = f"{settings.source}-{settings.hr_size}px-{cache_key(files, keyed)}.pt"
    path = Path(settings.cache_dir).expanduser().absolute() / name
    data, hit = load_or_build(path, build)
    return data, hit, path


def _images(settings: Source, listing: ImageListing) -> Plan:
    files = [item.path for item in listing.items] + [Path(path) for path, _ in listing.skipped]
    return files, {}, partial(build_images, listing, settings.hr_size, settings.intensity)


def _volumes(settings: Source, files: list[Path]) -> Plan:
    return files, {"axes": list(settings.axes), "min_foreground": settings.min_foreground}, partial(
        build_volumes, files, settings.axes, settings.min_foreground, settings.hr_size, settings.intensity)


def _tissue_maps(settings: Source, files: list[Path]) -> Plan:
    keyed = {"axes": list(settings.axes), "min_foreground": settings.min_foreground, "csf_closing": CSF_CLOSING}
    return files, keyed, partial(build_tissue_maps, files, settings.axes, settings.min_foreground, settings.hr_size)


def _real_scans(settings: Source, found: list[tuple[str, Path]]) -> Plan:
    files = [path for _, path in found if path.is_file()]  # a missing one is skipped and counted
    keyed = {"min_foreground": settings.min_foreground, "groups": [group for group, _ in found]}
    return files, keyed, partial(build_real_scans, found, settings.min_foreground, settings.hr_size,
                                 settings.intensity)


def build_images(listing: ImageListing, hr_size: int, intensity: str = "minmax") -> dict[str, Any]:
    """Decode an image listing into the cached form (see load_source)."""
    hr, kept, failed = decode_images([item.path for item in listing.items], hr_size, intensity)
    items = [listing.items[i] for i in kept]
    skipped = listing.skipped + failed
    _require_some(len(items), skipped)
    return {
        "hr": torch.from_numpy(hr).unsqueeze(1),
        "labels": torch.tensor([item.label for item in items], dtype=torch.int64),
        "splits": torch.tensor([SOURCE_SPLIT_CODES[item.split] for item in items], dtype=torch.int8),
        "slice_index": torch.full((len(items),), -1, dtype=torch.int64),
        "paths": [str(item.path) for item in items],
        "class_names": listing.class_names,
        "skipped": [path for path, _ in skipped],
        "skip_reasons": [reason for _, reason in skipped],
        "num_files": len(items) + len(skipped),
    }


def build_volumes(
    files: Sequence[Path], axes: Sequence[str], min_foreground: float, hr_size: int, intensity: str = "minmax"
) -> dict[str, Any]:
    """Slice NIfTI volumes into the cached form (see load_source); the class is the plane."""
    slices, failed = decode_volumes(files, axes, min_foreground, hr_size, intensity)
    _require_some(len(files) - len(failed), failed)
    if len(slices.hr) == 0:
        raise DataError(
            f"no slice of {len(files)} volume(s) has more than data.min_foreground={min_foreground} "
            f"foreground: lower data.min_foreground"
        )
    return {
        "hr": torch.from_numpy(slices.hr).unsqueeze(1),
        "labels": torch.tensor([list(axes).index(plane) for plane in slices.planes], dtype=torch.int64),
        "splits": torch.full((len(slices.hr),), SOURCE_SPLIT_CODES[None], dtype=torch.int8),
        "slice_index": torch.tensor(slices.slice_index, dtype=torch.int64),
        "paths": [str(files[number]) for number in slices.volume],
        "class_names": list(axes),
        "skipped": [path for path, _ in failed],
        "skip_reasons": [reason for _, reason in failed],
        "num_files": len(files),
    }


def _require_some(decoded: int, skipped: list[tuple[str, str]]) -> None:
    if decoded == 0:
        path, reason = skipped[0]
        raise DataError(
            f"none of the {len(skipped)} files could be read, e.g. {path} ({reason}): "
            f"check data.root and data.source"
        )


@dataclass(frozen=True)
class SourceKind:
    """A data source (`data.source`): how its files are found from data.root and how they are decoded."""

    find: Callable[[str | Path | None], Found]  # from data.root; DataError naming it and the fix
    plan: Callable[[Source, Any], Plan]
    embedded: bool = False  # reads files inside installed packages, not data.root


SOURCES = {
    "kaggle": SourceKind(kaggle_listing, _images),
    "folder": SourceKind(folder_listing, _images),
    "nifti": SourceKind(volume_files, _volumes),
    "mni152": SourceKind(lambda root: [mni152_file()], _volumes, embedded=True),
    "synth": SourceKind(lambda root: tissue_files(), _tissue_maps, embedded=True),
    "real_scans": SourceKind(lambda root: real_scan_files(), _real_scans, embedded=True),
}
# The sources that read files from inside installed packages, not from data.root.
EMBEDDED = tuple(name for name, kind in SOURCES.items() if kind.embedded)
