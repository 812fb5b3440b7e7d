"""Data consistency: how far degrade(SR) lies from the measured LR, and back-projection to close the gap, in-plane
and along a thick-slice volume's slice axis. Each uses its degradation's own forward model
(medivision.data.operators, medivision.data.slice_profile), so they need no torch."""

from __future__ import annotations

import numpy as np

from medivision.data.degradation_options import ForwardModel
from medivision.data.operators import upsample_array
from medivision.data.slice_profile import SliceGeometry, acquire, interpolation_matrix, profile_matrix

# An output identical to its reference would score inf; reported as this instead, the PSNR of an MSE of 1e-12.
MAX_PSNR = 120.0


def lr_consistency_psnr(sr: np.ndarray, lr: np.ndarray, scale: int, forward: ForwardModel) -> np.ndarray:
    """PSNR (dB, data range 1) of degrade(sr) against the LR input, per image: float [N] from SR [N, C, s*h, s*w]
    and LR [N, C, h, w] in [0, 1], at most MAX_PSNR.

    How far an output strays from what was actually measured: the LR input is all the evidence the model had,
    so a good SR image degrades back to it (bicubic upsampling scores high here too; this measures
    faithfulness, not quality).
    """
    return psnr(forward.degrade(sr, scale), lr)


def psnr(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """PSNR (dB, data range 1) per image of two batches [N, ...] in [0, 1]: float [N], at most MAX_PSNR."""
    error = (estimate.astype(np.float64) - reference).reshape(len(reference), -1)
    mse = np.maximum((error ** 2).mean(1), 1e-12)
    return np.minimum(-10.0 * np.log10(mse), MAX_PSNR)


def make_consistent(sr: np.ndarray, lr: np.ndarray, scale: int, forward: ForwardModel,
                    iterations: int = 20) -> np.ndarray:
    """Correct SR so that degrade(SR) matches the measured LR: iterative back-projection of the residual.

    sr: float32 [N, C, scale*h, scale*w] in [0, 1]; lr: float32 [N, C, h, w] in [0, 1], the input it was made
    from. Each iteration adds the LR residual lr - degrade(sr), upsampled bicubically, to sr and clips to
    [0, 1] (Irani and Peleg, 1991). The correction only moves what the LR image measures (the low
    frequencies); the detail the network added on top is kept. Returns float32 shaped like sr.
    """
    corrected = sr.astype(np.float32, copy=True)
    for _ in range(iterations):
        corrected += upsample_array(lr - forward.degrade(corrected, scale), scale)
        np.clip(corrected, 0.0, 1.0, out=corrected)
    return corrected


def slab_consistent(volume: np.ndarray, acquired: np.ndarray, geometry: SliceGeometry,
                    iterations: int = 10) -> np.ndarray:
    """Back-projection along a slice axis: `volume` [n, a, b] (float32 in [0, 1], slice axis first) corrected so
    that its slabs re-profiled equal the `acquired` slices [m, a, b]: volume + U (A U)^-1 (acquired - A volume), U
    the cubic B-spline interpolation and A the slice profile (the smooth correction in U's span that makes them
    equal), clipped to [0, 1]; repeated `iterations` times, since the clipping undoes part of each correction
    (alternating projections). Returns float32 [n, a, b]."""
    slices, pixels = acquired.shape[0], volume.shape[0]
    spline = interpolation_matrix(geometry, pixels, slices)
    correction = (spline @ np.linalg.inv(profile_matrix(geometry, pixels, slices) @ spline)).astype(np.float32)
    volume = volume.astype(np.float32, copy=True)
    for _ in range(iterations):
        volume += np.tensordot(correction, acquired - acquire(volume, geometry, slices), axes=(1, 0))
        np.clip(volume, 0.0, 1.0, out=volume)
    return volume
