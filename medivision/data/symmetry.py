"""The 8 symmetries of the square (rotations by quarter turns, and those followed by a flip) on the last two axes
of an array, with their inverses: what training augmentation draws from and what the self-ensemble averages over.

numpy only, so the core install (no torch) can run the self-ensemble.
"""

from __future__ import annotations

import numpy as np

SYMMETRIES = 8
# identity, left-right flip, up-down flip, half turn: the symmetries that keep a non-square H x W shape, in the
# order augment numbers them (a seeded run draws these positions, so the order is part of its results)
SHAPE_KEEPING = (0, 4, 6, 2)


def turn(x: np.ndarray, transform: int) -> np.ndarray:
    """Symmetry `transform` (0..7) of x [..., H, W], any dtype: np.rot90 by transform % 4 quarter turns (counter-
    clockwise), then a left-right flip for 4..7. Returns a contiguous copy, [..., W, H] for odd quarter turns."""
    turned = np.rot90(x, transform % 4, axes=(-2, -1))
    return np.ascontiguousarray(turned[..., ::-1] if transform >= 4 else turned)


def turn_back(x: np.ndarray, transform: int) -> np.ndarray:
    """The inverse of turn: turn_back(turn(x, t), t) equals x for every t in 0..7 (a view where it can be)."""
    if transform >= 4:
        x = x[..., ::-1]
    return np.rot90(x, -(transform % 4), axes=(-2, -1))
