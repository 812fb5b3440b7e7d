"""The linear map between stored pixel values and the network's [0, 1], in and back out.

unit = (value - low) / (high - low) on the way in; value = low + unit * (high - low) on the way out,
rounded and cast back to the stored dtype for integer data. [low, high] is the data's own minimum and
maximum ("minmax", the default: a 12-bit scan inside 16-bit words still fills [0, 1], as the training
images did) or the full range of an integer dtype ("dtype": 0..255, 0..65535, -32768..32767). Since the
network's output lies in [0, 1], every output value lies in [low, high], inside the dtype: nothing is
clipped, and 16-bit data stays 16-bit. An unchanged unit image maps back to the exact stored values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INTENSITY_MODES = ("minmax", "dtype")


@dataclass(frozen=True)
class IntensityMap:
    """value = low + unit * (high - low), with `dtype` the stored data's dtype."""

    low: float
    high: float
    dtype: np.dtype

    @classmethod
    def fit(cls, values: np.ndarray, mode: str = "minmax") -> IntensityMap:
        """The map for `values` (any shape, integer or float dtype). Float data always uses minmax."""
        if mode not in INTENSITY_MODES:
            raise ValueError(f"intensity={mode!r} is not one of {', '.join(INTENSITY_MODES)}")
        if mode == "dtype" and np.issubdtype(values.dtype, np.integer):
            info = np.iinfo(values.dtype)
            return cls(float(info.min), float(info.max), values.dtype)
        finite = values[np.isfinite(values)] if np.issubdtype(values.dtype, np.floating) else values
        if finite.size == 0:
            raise ValueError("the image holds no finite values")
        return cls(float(finite.min()), float(finite.max()), values.dtype)

    @property
    def span(self) -> float:
        # A constant image maps to 0 and back to itself.
        return self.high - self.low or 1.0

    def to_unit(self, values: np.ndarray) -> np.ndarray:
        """Stored values -> float32 in [0, 1]; NaNs (float volumes' masked voxels) become 0."""
        unit = (values.astype(np.float64) - self.low) / self.span
        return np.nan_to_num(unit, nan=0.0).astype(np.float32)

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        """[0, 1] -> stored values of `dtype` in [low, high] (rounded to the nearest integer for integer dtypes)."""
        values = self.low + np.clip(unit.astype(np.float64), 0.0, 1.0) * self.span
        if np.issubdtype(self.dtype, np.integer):
            values = np.clip(np.rint(values), self.low, self.high)  # guards float rounding at the ends only
        return values.astype(self.dtype)

    def describe(self) -> str:
        return f"value = {self.low:g} + unit * {self.span:g} ({np.dtype(self.dtype).name})"
