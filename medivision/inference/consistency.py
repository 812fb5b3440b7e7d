"""Data consistency: how far degrade(SR) lies from the measured LR, and back-projection to close the gap."""

from __future__ import annotations

import torch
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


def lr_consistency_psnr(sr: Tensor, lr: Tensor, scale: int, degradation: str = "bicubic",
                        options: DegradationOptions | None = None) -> Tensor:
    """PSNR (dB, data range 1) of degrade(sr) against the LR input, per image: [N].

    How far an output strays from what was actually measured: the LR input is all the evidence the
    model had, so a good SR image degrades back to it (bicubic upsampling scores high here too; this
    measures faithfulness, not quality). degrade() is the noise-free forward model, as in make_consistent.
    """
    mse = (degrade(sr, scale, degradation, options, noise=False) - lr).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))
