"""How a thick-slice (2-D multi-slice) acquisition samples its slice axis, as matrices along that one axis.

Units are output pixels: the in-plane spacing, which the isotropic output takes for every axis. Output pixel i
has its centre at coordinate i and covers [i - 0.5, i + 0.5]. Acquired slice j has its centre at
`offset + j * spacing`, with offset = (thickness - 1) / 2: the first slab starts at the output's first pixel
edge, so an output of `pixels(m)` pixels covers the m slabs from the first one's outer edge to the last one's.
With spacing = thickness there are no gaps; spacing > thickness leaves gaps of (spacing - thickness) between
slabs. A non-integer spacing is allowed: the slabs then sit at varying phases of the output grid.

  rect      the slab averages the object evenly over its thickness (the ideal slice profile).
  gaussian  a Gaussian slice profile whose full width at half maximum is the thickness (a real RF pulse's
            profile is closer to this than to a rect).

`profile_matrix` (output -> acquired slices; `acquire` applies it) is the forward model: what training degrades
with and what the through-plane pipeline's back-projection and LR-consistency compare with.
`interpolation_matrix` (acquired slices -> output) is linear or cubic B-spline interpolation between the slice
centres, mirrored at the ends: the baselines, and the input the through-plane network refines (`slab_operator`
chains the two, as training and adaptation make that input). Numpy only, so the core install uses them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

PROFILES = ("rect", "gaussian")
# The coarsest slice spacing handled, in in-plane pixels.
MAX_SLICE_FACTOR = 8.0
# FWHM = FWHM_PER_SIGMA * sigma for a Gaussian.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class SliceGeometry:
    """The slice axis of one acquisition, in output pixels: spacing >= thickness > 0 (gap = spacing - thickness)."""

    spacing: float
    thickness: float
    profile: str = "rect"

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise ValueError(f"slice profile {self.profile!r} is not one of {', '.join(PROFILES)}")
        if not 0 < self.thickness <= self.spacing + 1e-9:
            raise ValueError(f"slice thickness {self.thickness} must be positive and at most the spacing "
                             f"{self.spacing}")

    @property
    def offset(self) -> float:
        """The centre of acquired slice 0, in output pixels."""
        return (self.thickness - 1.0) / 2.0

    def slices(self, pixels: int) -> int:
        """How many whole slabs fit in `pixels` output pixels (at least 1)."""
        return max(1, math.floor((pixels - self.thickness) / self.spacing + 1e-9) + 1)

    def covering(self, pixels: int) -> int:
        """Every slab that starts inside `pixels` output pixels (the last one may stick out), so that only a gap can
        leave pixels at the end outside every slab."""
        return max(1, math.ceil(pixels / self.spacing - 1e-9))

    def pixels(self, slices: int) -> int:
        """The output size that covers `slices` slabs, first edge to last edge."""
        return max(1, round((slices - 1) * self.spacing + self.thickness))

    def centres(self, slices: int) -> np.ndarray:
        """float64 [slices]: the acquired slices' centres in output pixels."""
        return self.offset + self.spacing * np.arange(slices)


@functools.lru_cache(maxsize=256)
def profile_matrix(geometry: SliceGeometry, pixels: int, slices: int) -> np.ndarray:
    """The forward model: float64 [slices, pixels], row j the weights (summing to 1) with which slab j averages the
    output pixels along the slice axis (a slab that sticks out of the output averages the part inside). Read-only."""
    centres = geometry.centres(slices)[:, None]
    i = np.arange(pixels)[None, :]
    if geometry.profile == "rect":
        half = geometry.thickness / 2.0
        weights = np.clip(np.minimum(i + 0.5, centres + half) - np.maximum(i - 0.5, centres - half), 0.0, None)
    else:
        sigma = geometry.thickness / FWHM_PER_SIGMA
        weights = np.exp(-0.5 * ((i - centres) / sigma) ** 2)
    weights = weights / weights.sum(1, keepdims=True)
    weights.setflags(write=False)
    return weights


@functools.lru_cache(maxsize=256)
def interpolation_matrix(geometry: SliceGeometry, pixels: int, slices: int, order: int = 3) -> np.ndarray:
    """Interpolation from the slice centres to every output pixel: float64 [pixels, slices], order 1 (linear) or 3
    (cubic B-spline, the prefilter included, as scipy.ndimage.map_coordinates(order=3, mode="mirror")); beyond
    the first and last centre the slices are mirrored. Read-only."""
    if order not in (1, 3):
        raise ValueError(f"interpolation order {order} must be 1 (linear) or 3 (cubic B-spline)")
    where = (np.arange(pixels) - geometry.offset) / geometry.spacing  # in slice units
    if slices == 1:
        out = np.ones((pixels, 1))
    elif order == 1:
        out = _basis(where, slices, _linear, 1)
    else:
        out = _basis(where, slices, _cubic_bspline, 2) @ np.linalg.inv(_basis(np.arange(slices), slices,
                                                                               _cubic_bspline, 2))
    out.setflags(write=False)
    return out


def acquire(volume: np.ndarray, geometry: SliceGeometry, slices: int) -> np.ndarray:
    """The slabs that `volume` [n, ...] (slice axis first, n output pixels) averages into: float32 [slices, ...]
    (profile_matrix along axis 0): a simulated acquisition, or an output re-profiled to compare with one."""
    profile = profile_matrix(geometry, volume.shape[0], slices).astype(np.float32)
    return np.tensordot(profile, volume.astype(np.float32, copy=False), axes=(1, 0))


@functools.lru_cache(maxsize=256)
def slab_operator(geometry: SliceGeometry, size: int) -> np.ndarray:
    """float64 [size, size]: an image axis of `size` pixels averaged into every slab that starts inside it
    (SliceGeometry.covering) and interpolated back by cubic B-spline: how training (the `slices` degradation)
    and adaptation make a through-plane model's input from a sharp axis. Read-only."""
    slices = geometry.covering(size)
    out = interpolation_matrix(geometry, size, slices) @ profile_matrix(geometry, size, slices)
    out.setflags(write=False)
    return out


def _basis(where: np.ndarray, slices: int, kernel, radius: int) -> np.ndarray:
    """[len(where), slices]: sum_k kernel(where - k) over the integer k near each position, each k folded back
    into 0..slices-1 by whole-sample mirroring."""
    out = np.zeros((len(where), slices))
    period = 2 * (slices - 1)
    for row, u in enumerate(where):
        base = math.floor(u)
        for k in range(base - radius + 1, base + radius + 1):
            folded = k % period
            folded = period - folded if folded > slices - 1 else folded
            out[row, folded] += kernel(u - k)
    return out


def _linear(x: float) -> float:
    return max(0.0, 1.0 - abs(x))


def _cubic_bspline(x: float) -> float:
    x = abs(x)
    if x < 1:
        return 2.0 / 3.0 - x * x + x**3 / 2.0
    if x < 2:
        return (2.0 - x) ** 3 / 6.0
    return 0.0
