"""Self-ensemble ("+" in EDSR+): the input under the 8 flips/rotations of the square through the model, each
output turned back and averaged; the spread of the 8 outputs is an uncertainty map.

The map is the per-pixel standard deviation of the 8 outputs (in the same [0, 1] units as the image): where the
network's answer depends on how the input is turned, it is guessing. It is no error bar: it misses errors the 8
outputs agree on (the model's bias), and says nothing about what the LR input never held.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from medivision.data.symmetry import SYMMETRIES, turn, turn_back

Ensemble = Literal[1, 8]  # passes per image: one, or the 8 symmetries of the square averaged
ENSEMBLES: tuple[Ensemble, ...] = (1, 8)


def check_ensemble(ensemble: object, uncertainty: bool = False) -> Ensemble:
    """`ensemble=` as the number of passes per image; a ValueError naming the key and the fix otherwise, and when
    an uncertainty map is asked for without the 8 passes it is the spread of. The commands call it where the
    config enters; below them, the value is an Ensemble and is not checked again."""
    if isinstance(ensemble, bool) or ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble={ensemble!r} must be 1 (one pass) or 8 (the 8 flips/rotations, averaged)")
    if uncertainty and ensemble != 8:
        raise ValueError("uncertainty=true maps the spread of the 8 self-ensemble outputs: pass ensemble=8 with it")
    return 8 if ensemble == 8 else 1


def self_ensemble(run: Callable[[np.ndarray], np.ndarray], lr: np.ndarray,
                  ensemble: Ensemble = 8) -> tuple[np.ndarray, np.ndarray | None]:
    """lr float32 [N, C, h, w] in [0, 1] -> (SR float32 [N, C, s*h, s*w] in [0, 1], uncertainty of the same shape,
    or None for ensemble=1). `run` super-resolves a batch of any size (non-square images come back transposed
    by the odd rotations and are turned back). ensemble=8 costs 8 passes."""
    if ensemble == 1:
        return run(lr), None
    outputs = np.stack([turn_back(run(turn(lr, transform)), transform) for transform in range(SYMMETRIES)])
    return outputs.mean(0, dtype=np.float32), outputs.std(0, dtype=np.float32)

