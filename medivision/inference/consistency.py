"""Data consistency: back-projection, so that degrade(SR) matches the measured LR."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from medivision.data.degradations import DegradationOptions, degrade


def make_consistent(sr: Tensor, lr: Tensor, scale: int, degradation: str = "bicubic",
                    iterations: int = 20, options: DegradationOptions | None = None) -> Tensor:
    """Correct SR so that degrade(SR) matches the measured LR: iterative back-projection of the residual.

    sr: float [N, C, scale*h, scale*w] in [0, 1]; lr: float [N, C, h, w] in [0, 1], the input it was made
    from. Each iteration adds the LR residual lr - degrade(sr), upsampled bicubically, to sr and clamps
    to [0, 1] (Irani and Peleg, 1991). The correction only moves what the LR image measures (the low
    frequencies); the detail the network added on top is kept. Returns a tensor shaped like sr.
    degrade() here is the degradation's noise-free forward model (noise cannot be matched; bicubic for a
    `random` mix), with the kinds' `options`.
    """
    corrected = sr.clone()
    for _ in range(iterations):
        residual = lr - degrade(corrected, scale, degradation, options, noise=False)
        corrected += F.interpolate(residual, scale_factor=scale, mode="bicubic", align_corners=False)
        corrected.clamp_(0.0, 1.0)
    return corrected
