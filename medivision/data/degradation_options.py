"""The degradation kinds (`data.degradation`) and their options (`data.degradation_options`): one registry,
checked where the config enters. Plain Python: inference reads it without torch; medivision.data.degradations
holds each kind's batched torch implementation under the same name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from medivision.data.operators import WINDOWS, degrade_array
from medivision.data.options import (
    choices_from,
    is_number,
    number_in,
    number_range,
    option,
    settings_from,
    within,
)
from medivision.data.slice_profile import MAX_SLICE_FACTOR, PROFILES


@dataclass(frozen=True)
class Kind:
    """What the project knows of a degradation kind besides its implementation."""

    forward: str | None  # its noise-free forward model (medivision.data.operators), None for through-plane kinds
    options: tuple[str, ...] = ()  # the DegradationOptions it reads
    draws: bool = False  # draws random numbers per image: validation and test LR need per-image seeds
    noise: bool = False  # those draws are noise, which the noise-free forward model (degrade(noise=False)) drops
    mix: bool = False  # draws its kind per image from `kinds`
    through_plane: bool = False  # degrades the rows only and keeps the HR grid (data.scale = 1)


KINDS = {
    "bicubic": Kind("bicubic"),
    "kspace": Kind("kspace", ("window", "tukey_alpha")),
    "kspace_noise": Kind("kspace", ("window", "tukey_alpha", "noise"), draws=True, noise=True),
    "blur_noise": Kind("blur", ("psf_sigma", "noise"), draws=True, noise=True),
    "random": Kind("bicubic", ("kinds",), draws=True, noise=True, mix=True),
    "slices": Kind(None, ("slice_factor", "slice_profiles", "slice_gap"), draws=True, through_plane=True),
}
DEGRADATIONS = tuple(KINDS)
# The kinds with random draws: their validation and test LR need per-image seeds.
RANDOM_KINDS = tuple(name for name, kind in KINDS.items() if kind.draws)
# The kinds that degrade one axis and return the result on the HR grid (data.scale = 1): through-plane models.
THROUGH_PLANE_KINDS = tuple(name for name, kind in KINDS.items() if kind.through_plane)
# What a mix (`random`) may draw from: every other in-plane kind.
MIXABLE = tuple(name for name, kind in KINDS.items() if not kind.mix and not kind.through_plane)


@dataclass(frozen=True)
class DegradationOptions:
    """The settings of the degradations (`data.degradation_options`); each kind reads the ones it names."""

    # taper of the kept k-space band
    window: str = option("none", WINDOWS.__contains__, f"is not one of {', '.join(WINDOWS)}")
    # tukey: the fraction of the band that tapers (0: none, 1: Hann)
    tukey_alpha: float = option(0.5, number_in(0, 1), "must be a number in [0, 1]")
    # noise std range, full intensity = 1
    noise: tuple[float, float] = option(
        (0.01, 0.04), within(0, 1, high_open=True),
        "must be a noise std in [0, 1) or a range [low, high] with 0 <= low <= high < 1", number_range)
    # Gaussian PSF std in HR pixels (FWHM about one LR pixel at 4x)
    psf_sigma: float = option(1.7, lambda sigma: is_number(sigma) and sigma > 0,
                              "must be a positive number (HR pixels)")
    # random: drawn from these
    kinds: tuple[str, ...] = option(MIXABLE, choices_from(MIXABLE), f"must be a non-empty list of {', '.join(MIXABLE)}")
    # slices: slice over in-plane spacing, drawn from [low, high]
    slice_factor: tuple[float, float] = option(
        (2.0, 6.0), within(1, MAX_SLICE_FACTOR),
        f"must be a number or a range [low, high] within [1, {MAX_SLICE_FACTOR:g}]", number_range)
    # slices: rect | gaussian, drawn uniformly
    slice_profiles: tuple[str, ...] = option(PROFILES, choices_from(PROFILES),
                                             f"must be a non-empty list of {', '.join(PROFILES)}")
    # slices: gap between slabs, a fraction of the spacing, [low, high]
    slice_gap: tuple[float, float] = option(
        (0.0, 0.3), within(0, 0.9), "must be a number or a range [low, high] within [0, 0.9]", number_range)

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> DegradationOptions:
        """Options from a config mapping (missing keys keep their defaults); a bad one raises ValueError. Callers
        that name their own config key check it first with option_problems(options, DegradationOptions)."""
        return settings_from(cls, options, "degradation_options")


class ForwardModel(NamedTuple):
    """The noise-free forward model of a degradation kind with its options (medivision.data.operators): what
    data consistency and the LR-consistency check compare an output with."""

    model: str  # bicubic | kspace | blur
    window: str = "none"
    tukey_alpha: float = 0.5
    psf_sigma: float = 1.7

    @classmethod
    def of(cls, kind: str, options: DegradationOptions | None = None) -> ForwardModel:
        """The forward model of `kind` (one of DEGRADATIONS): noise dropped, bicubic for a `random` mix. ValueError
        for a through-plane kind, whose models serve only through_plane=true (enhance) and the thick benchmark."""
        if kind not in KINDS:
            raise ValueError(f"degradation={kind!r} is not one of {', '.join(DEGRADATIONS)}")
        if KINDS[kind].forward is None:
            raise ValueError(f"degradation={kind} is a through-plane model's: it serves thick-slice volumes only "
                             "(enhance through_plane=true, python -m medivision.thick_benchmark)")
        options = options or DegradationOptions()
        return cls(KINDS[kind].forward, options.window, options.tukey_alpha, options.psf_sigma)

    def degrade(self, hr: np.ndarray, scale: int) -> np.ndarray:
        """hr float [..., H, W] in [0, 1] -> float32 [..., H/scale, W/scale] in [0, 1]."""
        return degrade_array(hr, scale, *self)
