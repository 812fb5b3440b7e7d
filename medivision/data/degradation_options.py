"""The degradation kinds and their options (`data.degradation`, `data.degradation_options`), checked where the
config enters. Plain Python: inference reads them without torch (medivision.data.degradations has the kinds)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from medivision.data.operators import FORWARD_MODELS, WINDOWS, degrade_array
from medivision.data.options import mapping_problems, settings_from
from medivision.data.slice_profile import MAX_SLICE_FACTOR, PROFILES

DEGRADATIONS = ("bicubic", "kspace", "kspace_noise", "blur_noise", "random", "slices")
# The kinds with random draws: their validation and test LR need per-image seeds.
RANDOM_KINDS = ("kspace_noise", "blur_noise", "random", "slices")
# The kinds that degrade one axis and return the result on the HR grid (data.scale = 1): through-plane models.
THROUGH_PLANE_KINDS = ("slices",)


@dataclass(frozen=True)
class DegradationOptions:
    """The settings of the degradations (`data.degradation_options`); each kind reads the ones it uses."""

    window: str = "none"  # kspace, kspace_noise: taper of the kept k-space band, none | hann | tukey
    tukey_alpha: float = 0.5  # tukey: the fraction of the band that tapers (0: none, 1: Hann)
    noise: tuple[float, float] = (0.01, 0.04)  # kspace_noise, blur_noise: noise std range, full intensity = 1
    psf_sigma: float = 1.7  # blur_noise: Gaussian PSF std in HR pixels (FWHM about one LR pixel at 4x)
    kinds: tuple[str, ...] = ("bicubic", "kspace", "kspace_noise", "blur_noise")  # random: drawn from these
    slice_factor: tuple[float, float] = (2.0, 6.0)  # slices: slice over in-plane spacing, drawn from [low, high]
    slice_profiles: tuple[str, ...] = PROFILES  # slices: rect | gaussian, drawn uniformly
    slice_gap: tuple[float, float] = (0.0, 0.3)  # slices: gap between slabs, a fraction of the spacing, [low, high]

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> DegradationOptions:
        """Options from a config mapping (missing keys keep their defaults). Callers check the mapping first with
        options_problems, which lets them name their own config key; a bad mapping raises ValueError."""
        problems = options_problems(options)
        values = dict(options or {})
        for name in ("noise", "slice_factor", "slice_gap"):
            if name in values and not problems:
                values[name] = _range(values[name])
        return settings_from(cls, values, problems, "degradation_options")


def options_problems(options: Mapping[str, Any] | None) -> list[str]:
    """What is wrong with a degradation options mapping; [] when it is fine. Each problem is written to follow
    the name the caller's config gives the mapping: ".window='x' is not one of ..." or "=... must be ..."."""
    if options is None:
        return []
    problems = mapping_problems(options, DegradationOptions)
    if not isinstance(options, Mapping):
        return problems
    if "window" in options and options["window"] not in WINDOWS:
        problems.append(f".window={options['window']!r} is not one of {', '.join(WINDOWS)}")
    alpha = options.get("tukey_alpha", 0.5)
    if not _is_number(alpha) or not 0 <= alpha <= 1:
        problems.append(f".tukey_alpha={alpha!r} must be a number in [0, 1]")
    if "noise" in options:
        try:
            low, high = _range(options["noise"])
            if not 0 <= low <= high < 1:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f".noise={_plain(options['noise'])!r} must be a noise std in [0, 1) or a range "
                            f"[low, high] with 0 <= low <= high < 1")
    sigma = options.get("psf_sigma", 1.0)
    if not _is_number(sigma) or sigma <= 0:
        problems.append(f".psf_sigma={sigma!r} must be a positive number (HR pixels)")
    if "kinds" in options:
        kinds = options["kinds"]
        allowed = [kind for kind in DEGRADATIONS if kind not in ("random", *THROUGH_PLANE_KINDS)]
        if isinstance(kinds, str) or not isinstance(kinds, Sequence) or not kinds or not set(kinds) <= set(allowed):
            problems.append(f".kinds={_plain(kinds)!r} must be a non-empty list of {', '.join(allowed)}")
    problems += _slice_problems(options)
    return problems


def _slice_problems(options: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, low_bound, high_bound in (("slice_factor", 1.0, MAX_SLICE_FACTOR), ("slice_gap", 0.0, 0.9)):
        if name in options:
            try:
                low, high = _range(options[name])
                if not low_bound <= low <= high <= high_bound:
                    raise ValueError
            except (TypeError, ValueError):
                problems.append(f".{name}={_plain(options[name])!r} must be a number or a range [low, high] within "
                                f"[{low_bound:g}, {high_bound:g}]")
    profiles = options.get("slice_profiles", PROFILES)
    if isinstance(profiles, str) or not isinstance(profiles, Sequence) or not profiles or not set(profiles) <= set(
            PROFILES):
        problems.append(f".slice_profiles={_plain(profiles)!r} must be a non-empty list of {', '.join(PROFILES)}")
    return problems


def _range(value: Any) -> tuple[float, float]:
    if _is_number(value):
        return float(value), float(value)
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2 or not all(map(_is_number, value)):
        raise TypeError(value)
    return float(value[0]), float(value[1])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """Config lists as plain lists in messages (ListConfig prints its type otherwise)."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value


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
        if kind not in DEGRADATIONS:
            raise ValueError(f"degradation={kind!r} is not one of {', '.join(DEGRADATIONS)}")
        if kind in THROUGH_PLANE_KINDS:
            raise ValueError(f"degradation={kind} is a through-plane model's: it serves thick-slice volumes only "
                             "(enhance through_plane=true, python -m medivision.thick_benchmark)")
        options = options or DegradationOptions()
        return cls(FORWARD_MODELS[kind], options.window, options.tukey_alpha, options.psf_sigma)

    def degrade(self, hr: np.ndarray, scale: int) -> np.ndarray:
        """hr float [..., H, W] in [0, 1] -> float32 [..., H/scale, W/scale] in [0, 1]."""
        return degrade_array(hr, scale, *self)
