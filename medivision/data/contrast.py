"""Random MRI contrasts from tissue maps, made per batch on the batch's device (`data.source: synth`).

A batch of tissue maps float [B, 4, H, W] in [0, 1] (medivision.data.tissue.TISSUES: T1, GM, WM, CSF) becomes
HR images float [B, 1, H, W] in [0, 1]. Per image:
  1. (training only) a small random rotation and scale of the maps;
  2. a contrast family, drawn uniformly from `families`, and a mean intensity for each tissue drawn from that
     family's ranges (FAMILIES); the image is the maps weighted by them, the partial volumes of the
     probability maps mixing at tissue borders. The family `template` is the real T1 slice itself, as it is;
  3. for the other families: a smooth multiplicative bias field, scaling to the image's own maximum, a gamma
     and a Gaussian blur (partial volume);
  4. for every family, what real scans have around and over the brain: with probability `head`, a head around
     it (the maps are first shrunk to make room; then dark skull, bright scalp fat and skin in rings of random
     thickness and intensity, out from the brain's outline), and a Rician noise floor (`noise`), last, so the
     background is noise, not zero.

Randomness follows the degradations (medivision.data.degradations): with `seeds` (validation, test) each
image's draws come from a numpy generator seeded with its seed, so its contrast is the same in every run;
without them (training) fresh draws are made on the device, so every epoch sees new contrasts.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from medivision.data.acquisition import rician_magnitude
from medivision.data.intensity_augment import apply_gamma
from medivision.data.options import choices_from, number_in, option, settings_from

TEMPLATE = "template"
# Mean intensity ranges of (GM, WM, CSF, non-brain) before scaling to the image's maximum. The CSF-bright
# families (CSF_BRIGHT) order the tissues as T2-weighted, PD-weighted and diffusion b0 images do. A family's
# ranges for GM, WM and CSF do not overlap: each family is one ordering of the tissues (random: any).
FAMILIES: dict[str, tuple[tuple[float, float], ...]] = {
    "t1": ((0.45, 0.65), (0.75, 0.95), (0.05, 0.25), (0.3, 1.0)),
    "flair": ((0.6, 0.8), (0.35, 0.52), (0.0, 0.15), (0.2, 0.8)),
    "t2": ((0.45, 0.7), (0.25, 0.45), (0.8, 1.0), (0.2, 0.8)),
    "pd": ((0.62, 0.78), (0.45, 0.6), (0.8, 0.95), (0.3, 1.0)),
    "random": ((0.0, 1.0),) * 4,
}
CSF_BRIGHT = ("t2", "pd")
FAMILY_NAMES = (TEMPLATE, *FAMILIES)
BIAS_GRID = 4  # the bias field is a BIAS_GRID x BIAS_GRID grid of log-normal gains, upsampled bicubically
# The head's rings out from the brain's outline: skull, scalp fat, skin; thickness ranges in HR pixels (at 128) and
# intensity ranges, the fat bright as in T1 scans but at any level, the skull dark.
HEAD_RINGS = (((2.0, 6.0), (0.0, 0.15)), ((2.0, 7.0), (0.3, 1.0)), ((1.0, 3.0), (0.2, 0.7)))
HEAD_SHRINK = (0.72, 0.9)  # the maps' scale when a head is drawn around them, to make room for it
_UNIFORMS = ("family", "gm", "wm", "csf", "other", "bias", "blur", "noise", "rotation", "zoom",
             "head", "shrink", "skull", "fat", "skin", "skull_level", "fat_level", "skin_level")
_STREAM = 7  # mixed into each image's seed, so its contrast draws differ from its degradation's
_POSITIVE = "must be a number >= 0"


@dataclass(frozen=True)
class ContrastOptions:
    """`data.contrast`: how synthetic images are drawn (see the module docstring)."""

    # drawn uniformly per image, from FAMILY_NAMES
    families: tuple[str, ...] = option(FAMILY_NAMES, choices_from(FAMILY_NAMES),
                                       f"must be a non-empty list of {', '.join(FAMILY_NAMES)}")
    bias: float = option(0.3, number_in(0), _POSITIVE)  # largest std of the log bias field (0: none)
    gamma: float = option(0.3, number_in(0), _POSITIVE)  # std of log(gamma) (0: none)
    # HR blur: Gaussian std in HR pixels, drawn from [0, blur] (0: none)
    blur: float = option(0.5, number_in(0), _POSITIVE)
    # HR Rician noise std, drawn from [0, noise], full intensity = 1 (0: none)
    noise: float = option(0.0, number_in(0), _POSITIVE)
    # training: rotation drawn from [-rotation, rotation] degrees
    rotation: float = option(10.0, number_in(0), _POSITIVE)
    # training: scale drawn from [1 - zoom, 1 + zoom]
    zoom: float = option(0.1, number_in(0, 1, high_open=True), "must be a number in [0, 1)")
    # probability of a head (skull, scalp fat, skin) around the brain
    head: float = option(0.0, number_in(0, 1), "must be a probability in [0, 1]")

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> ContrastOptions:
        """Options from a config mapping (missing keys keep their defaults); a bad mapping raises ValueError."""
        return settings_from(cls, options, "contrast")


class ContrastDraws(NamedTuple):
    """The random numbers of one batch of B images of H x W."""

    uniform: Tensor  # float [B, len(_UNIFORMS)] in [0, 1)
    bias: Tensor  # float [B, 1, BIAS_GRID, BIAS_GRID] standard normal
    gamma: Tensor  # float [B] standard normal
    noise: Tensor  # float [B, 2, 1, H, W] standard normal


def synthesize(maps: Tensor, options: ContrastOptions | None = None, seeds: Sequence[int] | None = None) -> Tensor:
    """Tissue maps float [B, 4, H, W] in [0, 1] (TISSUES) -> HR float [B, 1, H, W] in [0, 1] on the same device.

    seeds: one int per image (validation, test: reproducible draws, no rotation or zoom; only the shrink that
    makes room for a head); None: training.
    """
    options = options or ContrastOptions()
    if seeds is not None and len(seeds) != len(maps):
        raise ValueError(f"got {len(seeds)} seeds for a batch of {len(maps)} images")
    draws = contrast_draws(maps, seeds)
    u = dict(zip(_UNIFORMS, draws.uniform.unbind(1)))
    training = seeds is None
    heads = u["head"] < options.head  # bool [B]
    scale = torch.where(heads, HEAD_SHRINK[0] + (HEAD_SHRINK[1] - HEAD_SHRINK[0]) * u["shrink"], 1.0)
    angle = torch.zeros_like(scale)
    if training:
        angle = (2 * u["rotation"] - 1) * math.radians(options.rotation)
        scale = scale * (1 + (2 * u["zoom"] - 1) * options.zoom)
    if options.head or (training and (options.rotation or options.zoom)):  # decided on the host: no device sync
        maps = _warp(maps, angle, scale)
    t1, gm, wm, csf = maps.unbind(1)
    other = t1 * (1 - gm - wm - csf).clamp(0.0, 1.0)
    tissues = torch.stack([gm, wm, csf, other], 1)

    names = options.families
    pick = (u["family"] * len(names)).long().clamp_max(len(names) - 1)
    table, is_template = _family_table(names, maps.device, maps.dtype)
    ranges = table[pick]  # [B, 4, 2]
    means = ranges[..., 0] + (ranges[..., 1] - ranges[..., 0]) * torch.stack([u[k] for k in _UNIFORMS[1:5]], 1)
    image = (tissues * means[:, :, None, None]).sum(1, keepdim=True)
    image = image * _bias_field(draws.bias * options.bias * u["bias"].view(-1, 1, 1, 1), image.shape[-2:])
    image = image / image.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    image = apply_gamma(image, torch.exp(options.gamma * draws.gamma))
    if options.blur:
        image = _blur(image, options.blur * u["blur"], options.blur)
    image = torch.where(is_template[pick].view(-1, 1, 1, 1), t1[:, None], image).clamp(0.0, 1.0)
    if options.head:
        image = _add_head(image, (gm + wm + csf)[:, None], heads, u)
    if options.noise:
        image = rician_magnitude(image, (options.noise * u["noise"]).view(-1, 1, 1, 1), draws.noise)
    return image.clamp(0.0, 1.0)


def _add_head(image: Tensor, brain: Tensor, heads: Tensor, u: dict[str, Tensor]) -> Tensor:
    """Skull, scalp fat and skin rings (HEAD_RINGS) out from the brain's outline in the images where heads [B] is
    True; image [B, 1, H, W], brain: the brain's probability [B, 1, H, W]. Thickness and intensity are drawn per
    image (u: the uniform draws); the rings follow the outline, so they bend with it."""
    inside = (brain > 0.5).float()
    scale = image.shape[-1] / 128
    widths = [(low + (high - low) * u[name]) * scale for name, ((low, high), _) in zip(("skull", "fat", "skin"),
                                                                                       HEAD_RINGS)]
    reach = math.ceil(sum(high for (_, high), _ in HEAD_RINGS) * scale) + 1
    # distance out from the brain in pixels: the number of 3x3 dilations that reach each pixel (0 inside the
    # brain, reach + 1 beyond every ring)
    missed = torch.zeros_like(inside)
    grown = inside
    for _ in range(reach):
        grown = F.max_pool2d(grown, 3, stride=1, padding=1)
        missed = missed + (1 - grown)
    distance = (missed + 1) * (1 - inside)
    outer = torch.zeros_like(heads, dtype=image.dtype)
    head = torch.zeros_like(image)
    for width, (name, (_, (low, high))) in zip(widths, zip(("skull", "fat", "skin"), HEAD_RINGS)):
        inner, outer = outer, outer + width
        ring = ((distance > inner.view(-1, 1, 1, 1)) & (distance <= outer.view(-1, 1, 1, 1))).float()
        head = head + ring * (low + (high - low) * u[f"{name}_level"]).view(-1, 1, 1, 1)
    head = _blur(head, torch.full_like(outer, 0.7), 0.7)  # ring edges with partial volume, as tissue borders have
    outside = 1 - inside
    return torch.where(heads.view(-1, 1, 1, 1), image * inside + torch.maximum(image, head) * outside, image)


@functools.lru_cache(maxsize=16)
def _family_table(names: tuple[str, ...], device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """float [F, 4, 2]: each family's (low, high) per tissue, and bool [F]: which is the template; made once per
    device, not copied to it every batch."""
    ranges = torch.tensor([FAMILIES.get(name, ((0.0, 0.0),) * 4) for name in names], device=device, dtype=dtype)
    return ranges, torch.tensor([name == TEMPLATE for name in names], device=device)


def contrast_draws(maps: Tensor, seeds: Sequence[int] | None = None) -> ContrastDraws:
    """The draws for a batch of maps [B, C, H, W]: from each image's seed on the CPU, or afresh on its device."""
    batch, _, height, width = maps.shape
    shapes = ((len(_UNIFORMS),), (1, BIAS_GRID, BIAS_GRID), (), (2, 1, height, width))
    if seeds is None:
        uniform = torch.rand(batch, *shapes[0], device=maps.device, dtype=maps.dtype)
        normal = [torch.randn(batch, *shape, device=maps.device, dtype=maps.dtype) for shape in shapes[1:]]
        return ContrastDraws(uniform, *normal)
    generators = [np.random.default_rng((int(seed), _STREAM)) for seed in seeds]
    # Each image's draws for the head (the uniforms from "head" on) come after the others, so with head=0 a seeded
    # image is what it was before the option existed.
    first = _UNIFORMS.index("head")
    per_image = []
    for rng in generators:
        uniform, normal = rng.random(first), [rng.standard_normal(shape) for shape in shapes[1:]]
        per_image.append((np.concatenate([uniform, rng.random(len(_UNIFORMS) - first)]), *normal))
    stacked = [torch.from_numpy(np.stack(column)).to(maps.device, maps.dtype) for column in zip(*per_image)]
    return ContrastDraws(*stacked)


def _warp(maps: Tensor, angle: Tensor, scale: Tensor) -> Tensor:
    """Rotate each image by angle [B] radians and scale it by scale [B] (> 1 enlarges) about its centre."""
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(maps.shape), align_corners=False)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _bias_field(log_gain: Tensor, size: torch.Size) -> Tensor:
    """float [B, 1, H, W] > 0: the coarse log gains [B, 1, g, g] upsampled smoothly and exponentiated."""
    return torch.exp(F.interpolate(log_gain, size=tuple(size), mode="bicubic", align_corners=True))


def _blur(image: Tensor, sigma: Tensor, largest: float) -> Tensor:
    """A separable Gaussian blur of each image [B, 1, H, W] with its own std sigma [B] <= largest (HR pixels)."""
    batch, _, height, width = image.shape
    radius = max(1, math.ceil(3.0 * largest))
    offsets = torch.arange(-radius, radius + 1, device=image.device, dtype=image.dtype)
    kernel = torch.exp(-0.5 * (offsets[None] / sigma.clamp_min(1e-3)[:, None]) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)
    flat = image.reshape(1, batch, height, width)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel.view(batch, 1, 1, -1), groups=batch)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel.view(batch, 1, -1, 1), groups=batch)
    return flat.view(batch, 1, height, width)
