"""Random intensity changes of training HR images, for any source (`data.intensity_augment`; off by default).

Applied on the device to HR float [B, 1, H, W] in [0, 1] before the LR is made from it, so each pair stays a
true HR/LR pair. Per image:
  gamma     x -> x ** g, log(g) ~ N(0, gamma^2): brightens or darkens mid-tones, keeps 0 and 1
  contrast  x -> m + c (x - m), m the image mean, c uniform in [1 - contrast, 1 + contrast], clipped to [0, 1]
  invert    with this probability, x -> 1 - x (dark tissue becomes bright; the background too)
With every setting 0 (the default) images pass unchanged: the research set is trained on its own contrast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from medivision.data.options import mapping_problems, settings_from


@dataclass(frozen=True)
class IntensityAugment:
    """`data.intensity_augment` (see the module docstring)."""

    gamma: float = 0.0  # std of log(gamma); 0: off
    contrast: float = 0.0  # largest relative contrast change, in [0, 1); 0: off
    invert: float = 0.0  # probability of inverting an image, in [0, 1]; 0: off

    @property
    def active(self) -> bool:
        return bool(self.gamma or self.contrast or self.invert)

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> IntensityAugment:
        """Settings from a config mapping (missing keys are 0); check it first with augment_problems."""
        return settings_from(cls, options, augment_problems(options), "intensity_augment")


def augment_problems(options: Mapping[str, Any] | None) -> list[str]:
    """What is wrong with an intensity_augment mapping ([] when fine), written to follow the caller's key."""
    if options is None:
        return []
    problems = mapping_problems(options, IntensityAugment)
    if not isinstance(options, Mapping):
        return problems
    limits = {"gamma": (0.0, float("inf"), "a number >= 0"), "contrast": (0.0, 0.999999, "a number in [0, 1)"),
              "invert": (0.0, 1.0, "a probability in [0, 1]")}
    for name, (low, high, what) in limits.items():
        value = options.get(name, 0.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
            problems.append(f".{name}={value!r} must be {what}")
    return problems


def augment_intensity(hr: Tensor, options: IntensityAugment) -> Tensor:
    """HR float [B, C, H, W] in [0, 1] -> the same shape in [0, 1], each image changed by its own fresh draws
    on hr's device (training only)."""
    if not options.active:
        return hr
    batch = hr.shape[0]
    draws = torch.rand(batch, 2, device=hr.device, dtype=hr.dtype)
    image = apply_gamma(hr, torch.exp(options.gamma * torch.randn(batch, device=hr.device, dtype=hr.dtype)))
    if options.contrast:
        mean = image.mean(dim=(1, 2, 3), keepdim=True)
        factor = (1 + (2 * draws[:, 0] - 1) * options.contrast).view(-1, 1, 1, 1)
        image = (mean + factor * (image - mean)).clamp(0.0, 1.0)
    invert = (draws[:, 1] < options.invert).view(-1, 1, 1, 1)
    return torch.where(invert, 1.0 - image, image)


def apply_gamma(image: Tensor, gamma: Tensor) -> Tensor:
    """image float [B, C, H, W] in [0, 1] raised to each image's gamma [B] > 0 (values stay in [0, 1])."""
    return image.clamp(0.0, 1.0).pow(gamma.view(-1, 1, 1, 1))
