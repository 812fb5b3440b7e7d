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

from medivision.data.options import number_in, option, settings_from


@dataclass(frozen=True)
class IntensityAugment:
    """`data.intensity_augment` (see the module docstring)."""

    gamma: float = option(0.0, number_in(0), "must be a number >= 0")  # std of log(gamma); 0: off
    # largest relative contrast change, in [0, 1); 0: off
    contrast: float = option(0.0, number_in(0, 1, high_open=True), "must be a number in [0, 1)")
    # probability of inverting an image, in [0, 1]; 0: off
    invert: float = option(0.0, number_in(0, 1), "must be a probability in [0, 1]")

    @property
    def active(self) -> bool:
        return bool(self.gamma or self.contrast or self.invert)

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> IntensityAugment:
        """Settings from a config mapping (missing keys are 0); a bad mapping raises ValueError."""
        return settings_from(cls, options, "intensity_augment")


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
