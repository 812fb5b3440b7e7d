"""The intensity policy: how stored pixel values become the network's [0, 1] and outputs go back, everywhere.

Training's data sources (images and NIfTI volumes, cached as uint8 after this map, which evaluate reads too) and
enhance (images, NIfTI, DICOM) read a file through the one reader of its format (medivision.io.images,
medivision.io.nifti, medivision.io.dicom) and map it with one IntensityMap:

    unit  = (value - low) / (high - low)            on the way in (NaN voxels become 0)
    value = low + unit * (high - low)                on the way out, rounded and cast to the stored dtype

with [low, high] chosen by the policy:
- "minmax" (the default): the data's own minimum and maximum, per 2-D image file, per NIfTI volume and per
  DICOM series (so the slices of a volume or series stay comparable). A 12-bit scan inside 16-bit words, an
  8-bit JPEG and a float volume all fill [0, 1].
- "dtype": the full range of an integer dtype (0..255, 0..65535, -32768..32767); float data uses minmax.

Why not percentile scaling, the usual choice for MRI: it clips the brightest voxels, so outputs could not
give them back. Here every output value lies in [low, high], inside the dtype: nothing is clipped, 16-bit data
stays 16-bit, and an unchanged unit image maps back to the exact stored values. The cost of minmax: a few hot
voxels darken the rest of a volume. Checkpoints (the model.intensity hyperparameter, which follows
data.intensity) and exported ONNX files record the policy a model was trained with; evaluate refuses data read
with another one, and enhance uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _minmax(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)] if np.issubdtype(values.dtype, np.floating) else values
    if finite.size == 0:
        raise ValueError("the image holds no finite values")
    return float(finite.min()), float(finite.max())


def _dtype(values: np.ndarray) -> tuple[float, float]:
    if not np.issubdtype(values.dtype, np.integer):
        return _minmax(values)
    info = np.iinfo(values.dtype)
    return float(info.min), float(info.max)


# Each policy (data.intensity, model.intensity, enhance's intensity): stored values -> their [low, high].
INTENSITY_POLICIES = {"minmax": _minmax, "dtype": _dtype}


@dataclass(frozen=True)
class IntensityMap:
    """value = low + unit * (high - low), with `dtype` the stored data's dtype."""

    low: float
    high: float
    dtype: np.dtype

    @classmethod
    def fit(cls, values: np.ndarray, mode: str = "minmax") -> IntensityMap:
        """The map for `values` (any shape, integer or float dtype) by the policy `mode`, one of
        INTENSITY_POLICIES, checked where the config enters. Float data always uses minmax."""
        return cls(*INTENSITY_POLICIES[mode](values), values.dtype)

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
            info = np.iinfo(self.dtype)  # a stretched spread map's high lies beyond the dtype
            values = np.clip(np.rint(values), max(self.low, info.min), min(self.high, info.max))
        return values.astype(self.dtype)

    def spread(self, peak: float = 0.0) -> IntensityMap:
        """The map for differences of this map's values (an uncertainty map, a standard deviation in [0, 1] units):
        value = unit * span, no offset, in the same dtype (capped at its largest value).

        In 8 bits such a map is a few values out of 255, which a viewer shows black; given `peak` (the map's
        largest value, in [0, 1] units), an 8-bit map is stretched instead so that `peak` is stored as 255:
        value = unit * 255 / peak, which describe() writes down.
        """
        if np.dtype(self.dtype) == np.uint8 and peak > 0:
            return IntensityMap(0.0, 255.0 / peak, self.dtype)
        high = self.span if not np.issubdtype(self.dtype, np.integer) else min(self.span, np.iinfo(self.dtype).max)
        return IntensityMap(0.0, float(high), self.dtype)

    def describe(self) -> str:
        return f"value = {self.low:g} + unit * {self.span:g} ({np.dtype(self.dtype).name})"
