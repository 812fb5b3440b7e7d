"""Thick-slice volumes made isotropic: through-plane super-resolution along the slice axis, over numpy arrays.

A thick-slice volume is sharp in-plane and coarse along its slice axis. Its m acquired slices are first
interpolated onto the in-plane grid along that axis (cubic B-spline between slice centres,
medivision.data.slice_profile), then a through-plane model (a scale-1 generator trained with
data.degradation=slices: it refines images whose rows are the slice axis) is applied to the through-plane
images in both orientations that contain the slice axis, and the two estimates are averaged. Last, the result
is made consistent with the acquired slices: the smooth correction (in the span of the interpolation) after which
every slab, re-profiled, equals the acquired slice, alternated with clipping to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from medivision.data.slice_profile import MAX_SLICE_FACTOR, SliceGeometry, acquire, interpolation_matrix
from medivision.inference.consistency import psnr, slab_consistent
from medivision.inference.tiling import super_resolve

# Below this ratio of slice spacing to in-plane spacing a volume counts as isotropic.
MIN_SLICE_FACTOR = 1.5


class Isotropic(NamedTuple):
    """A volume made isotropic, with the slice axis first: float32 [n, a, b] in [0, 1]."""

    volume: np.ndarray
    lr_psnr: float  # the output's slabs re-profiled against the acquired slices (dB)
    disagreement: np.ndarray  # float32 [n, a, b]: |orientation 1 - orientation 2| / 2, where the two estimates differ


def slice_axis(spacing: tuple[float, float, float], thickness: float | None = None,
               thickness_from: str = "slice_thickness") -> tuple[int, SliceGeometry]:
    """The slice axis of a volume with voxel spacing (mm per axis) and its geometry in in-plane pixels.

    The slice axis is the one with the largest spacing; the in-plane spacing is the finer of the other two.
    thickness: the slab thickness in mm (None: equal to the spacing, no gap), which `thickness_from` names in
    messages. ValueError naming the value for a volume that is already about isotropic, whose slices are more
    than MAX_SLICE_FACTOR times coarser, or whose slabs would overlap.
    """
    axis = int(np.argmax(spacing))
    in_plane = min(s for i, s in enumerate(spacing) if i != axis)
    factor = spacing[axis] / in_plane
    shown = " x ".join(f"{s:g}" for s in spacing)
    if factor < MIN_SLICE_FACTOR:
        raise ValueError(f"voxel spacing {shown} mm is about isotropic (the coarsest axis is {factor:.2f}x the finest):"
                         " through_plane=true is for thick slices; the in-plane mode (through_plane=false) fits")
    if factor > MAX_SLICE_FACTOR:
        raise ValueError(f"voxel spacing {shown} mm: slices {factor:.1f}x coarser than in-plane; through_plane=true "
                         f"handles up to {MAX_SLICE_FACTOR:g}x")
    thickness = spacing[axis] if thickness is None else thickness
    if not 0 < thickness <= spacing[axis] * 1.001:
        raise ValueError(f"{thickness_from}={thickness:g} mm must be positive and at most the slice spacing "
                         f"{spacing[axis]:g} mm (gaps are allowed, overlapping slices are not): pass "
                         "slice_thickness= with the thickness to assume")
    return axis, SliceGeometry(factor, min(thickness, spacing[axis]) / in_plane)


@dataclass
class ThroughPlane:
    """A through-plane model applied to volumes: float32 [m, a, b] (slice axis first, m acquired slices) in [0, 1]
    -> Isotropic with n = geometry.pixels(m) slices. model: LR [B, 1, h, w] -> [B, 1, h, w] in [0, 1] (scale 1)."""

    model: Callable[[np.ndarray], np.ndarray]
    geometry: SliceGeometry
    batch_size: int = 8
    tile: int = 256
    overlap: int = 32

    def __call__(self, acquired: np.ndarray, done: Callable[[int], None] = lambda count: None) -> Isotropic:
        slices = acquired.shape[0]
        start = np.clip(interpolate(acquired, self.geometry), 0.0, 1.0)  # as training clips its inputs
        # orientation 1: images [b, n, a] (rows the slice axis); orientation 2: images [a, n, b]
        first = self._refine(start.transpose(2, 0, 1), done).transpose(1, 2, 0)
        second = self._refine(start.transpose(1, 0, 2), done).transpose(1, 0, 2)
        volume = slab_consistent((first + second) / 2, acquired, self.geometry)
        reprofiled = acquire(volume, self.geometry, slices)
        return Isotropic(volume, float(psnr(reprofiled[None], acquired[None])[0]), np.abs(first - second) / 2)

    def _refine(self, images: np.ndarray, done: Callable[[int], None]) -> np.ndarray:
        """float32 [N, h, w] -> the model's [N, h, w], batch_size images at a time."""
        out = np.empty_like(images)
        for begin in range(0, len(images), self.batch_size):
            batch = np.ascontiguousarray(images[begin:begin + self.batch_size, None])
            out[begin:begin + len(batch)] = super_resolve(self.model, batch, 1, self.tile, self.overlap,
                                                          self.batch_size)[:, 0]
            done(len(batch))
        return out


def interpolate(acquired: np.ndarray, geometry: SliceGeometry, order: int = 3) -> np.ndarray:
    """The acquired slices [m, a, b] interpolated onto the output grid [geometry.pixels(m), a, b] along axis 0:
    order 3 cubic B-spline, 1 linear (float32)."""
    slices = acquired.shape[0]
    matrix = interpolation_matrix(geometry, geometry.pixels(slices), slices, order).astype(np.float32)
    return np.tensordot(matrix, acquired.astype(np.float32), axes=(1, 0))
