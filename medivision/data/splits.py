"""Seeded, class-stratified train/val/test assignment that never puts copies of an image in two splits.

Three things decide where an item may go:
- Exact duplicates (identical HR bytes): a training item that duplicates a test item is removed
  (the test copy stays), and so is every later repeat of an image already kept. Repeats carry no
  new information, and dropping them means no pair of copies can straddle train and val. (The
  MNI152 template is left-right symmetric, so half of its sagittal slices are such repeats.)
- Volume slices: neighbouring slices are near-copies, so a volume's slices are cut into contiguous
  blocks of SLICE_BLOCK along each axis and each block goes to one split whole. Only the two slices
  at a boundary between blocks of different splits remain neighbours.
- Stratification: within each class (for volumes: each plane) the groups (blocks, or single 2-D
  images) are shuffled with the seed and the first fractions go to test and val.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import numpy as np
from torch import Tensor

SPLITS = ("train", "val", "test")
TRAIN, VAL, TEST = range(3)
UNASSIGNED = -1
SLICE_BLOCK = 8


class Splits(NamedTuple):
    rows: tuple[np.ndarray, np.ndarray, np.ndarray]  # indices into the cached data: train, val, test
    duplicates_removed: int  # training items dropped because the test split holds an exact copy
    repeats_removed: int  # later exact copies of an image already kept


def make_splits(
    data: dict[str, Any], val_fraction: float, test_fraction: float, seed: int, limit: int | None = None
) -> Splits:
    """Split a cached data set (see medivision.data.build.load_source) as described above.

    limit: keep at most this many items per split, chosen with the seed.
    """
    labels, source_splits = data["labels"].numpy(), data["splits"].numpy()
    hashes = image_hashes(data["hr"])
    across = cross_split_duplicates(hashes, source_splits)
    kept = np.flatnonzero(~across)
    repeated = repeats(hashes[kept])
    kept = kept[~repeated]

    groups = split_groups([data["paths"][i] for i in kept], labels[kept], data["slice_index"].numpy()[kept])
    splits = assign_splits(groups, labels[kept], source_splits[kept], val_fraction, test_fraction, seed)
    if limit is not None:
        chosen = limit_per_split(splits, limit, seed)
        kept, splits = kept[chosen], splits[chosen]
    rows = (kept[splits == TRAIN], kept[splits == VAL], kept[splits == TEST])
    return Splits(rows, int(across.sum()), int(repeated.sum()))


def image_hashes(hr: Tensor) -> np.ndarray:
    """int64 [N]: equal values exactly where the images [N, ...] have identical bytes."""
    ids: dict[bytes, int] = {}
    digests = (hashlib.blake2b(image.numpy().tobytes(), digest_size=16).digest() for image in hr)
    return np.array([ids.setdefault(digest, len(ids)) for digest in digests], dtype=np.int64)


def cross_split_duplicates(hashes: np.ndarray, source_splits: np.ndarray) -> np.ndarray:
    """bool [N]: items outside the source's test split whose exact copy is in the test split."""
    return np.isin(hashes, hashes[source_splits == TEST]) & (source_splits != TEST)


def repeats(hashes: np.ndarray) -> np.ndarray:
    """bool [N]: items whose exact copy occurs earlier in the list."""
    repeated = np.ones(len(hashes), dtype=bool)
    repeated[np.unique(hashes, return_index=True)[1]] = False
    return repeated


def split_groups(paths: list[str], labels: np.ndarray, slice_index: np.ndarray) -> np.ndarray:
    """int64 [N] group ids 0..G-1: one per (volume, plane, block of SLICE_BLOCK slices), one per 2-D image."""
    ids: dict[tuple, int] = {}
    keys = (
        (path, label, index // SLICE_BLOCK) if index >= 0 else (item,)
        for item, (path, label, index) in enumerate(zip(paths, labels.tolist(), slice_index.tolist()))
    )
    return np.array([ids.setdefault(key, len(ids)) for key in keys], dtype=np.int64)


def assign_splits(
    groups: np.ndarray,
    labels: np.ndarray,
    source_splits: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> np.ndarray:
    """int8 [N] split codes (TRAIN, VAL, TEST), assigning whole groups (ids 0..G-1).

    Items the source puts in its test split stay there; its training items are split into train and
    val; items without a source split are split into train, val and test. A group's class and source
    split are those of its first item.
    """
    first = np.unique(groups, return_index=True)[1]
    group_labels, group_sources = labels[first], source_splits[first]
    group_splits = np.full(len(first), TRAIN, dtype=np.int8)
    group_splits[group_sources == TEST] = TEST
    rng = np.random.default_rng(seed)
    carve = {TRAIN: [(VAL, val_fraction)], UNASSIGNED: [(TEST, test_fraction), (VAL, val_fraction)]}
    for source, shares in carve.items():
        for label in np.unique(group_labels[group_sources == source]):
            stratum = rng.permutation(np.flatnonzero((group_sources == source) & (group_labels == label)))
            start = 0
            for split, fraction in shares:
                count = _share(len(stratum), fraction, len(shares))
                group_splits[stratum[start : start + count]] = split
                start += count
    return group_splits[groups]


def limit_per_split(splits: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """bool [N]: keep a seeded random `limit` items of each split (all of a split that is smaller)."""
    rng = np.random.default_rng((seed, 1))
    keep = np.ones(len(splits), dtype=bool)
    for split in range(len(SPLITS)):
        members = np.flatnonzero(splits == split)
        if len(members) > limit:
            keep[members] = False
            keep[rng.choice(members, limit, replace=False)] = True
    return keep


def _share(size: int, fraction: float, parts: int) -> int:
    count = int(size * fraction + 0.5)
    # A small class still gets one item in every split that asks for some, as long as train keeps one.
    if fraction > 0 and count == 0 and size > parts:
        count = 1
    return count
