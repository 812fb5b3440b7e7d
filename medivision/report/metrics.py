"""Per-image quality numbers, all from torchmetrics' functional API: PSNR/SSIM on the whole image and on the
brain, and LR-consistency (how far degrade(SR) lies from the LR input)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from medivision.data.degradation_options import DegradationOptions, ForwardModel
from medivision.inference.consistency import MAX_PSNR, lr_consistency_psnr

METRICS = ("psnr", "ssim", "fg_psnr", "fg_ssim", "lr_psnr", "bg_mean")


def psnr(sr: Tensor, hr: Tensor) -> Tensor:
    """PSNR (dB, data range 1) of each image: float [B] from [B, C, H, W] in [0, 1], at most MAX_PSNR.

    The mean over a split is what training logs as val/psnr and test/psnr (PeakSignalNoiseRatio over
    dim (1, 2, 3)).
    """
    return peak_signal_noise_ratio(sr, hr, data_range=1.0, reduction="none", dim=(1, 2, 3)).clamp_max(MAX_PSNR)


def ssim(sr: Tensor, hr: Tensor) -> Tensor:
    """SSIM (Gaussian 11x11, data range 1) of each image: float [B] from [B, C, H, W] in [0, 1]."""
    return structural_similarity_index_measure(sr, hr, data_range=1.0, reduction="none")


def foreground_mask(hr: Tensor, level: float = 0.05, dilation: int = 2) -> Tensor:
    """The brain (head) in each HR image: bool [B, 1, H, W] from float HR [B, 1, H, W] in [0, 1].

    Pixels above `level` (the level the slicer uses for foreground), with the holes filled (dark
    structures enclosed by the head, such as ventricles or a tumour's necrotic core, belong to it),
    then dilated by `dilation` pixels so the edge of the head, where SR errors gather, is inside.
    Hole filling: the background is every below-level pixel connected to the image border; the mask
    is everything else.
    """
    background = hr <= level
    border = torch.zeros_like(background)
    border[..., 0, :] = border[..., -1, :] = border[..., :, 0] = border[..., :, -1] = True
    reached = border & background
    while True:  # flood fill from the border through the background, one 4-neighbour step at a time
        grown = _grow(reached) & background
        if torch.equal(grown, reached):
            break
        reached = grown
    mask = ~reached
    if dilation > 0:
        mask = F.max_pool2d(mask.float(), 2 * dilation + 1, stride=1, padding=dilation) > 0
    return mask


def _grow(mask: Tensor) -> Tensor:
    """bool [B, 1, H, W] with each True pixel's 4 neighbours set too."""
    padded = F.pad(mask, (1, 1, 1, 1))
    return mask | padded[..., :-2, 1:-1] | padded[..., 2:, 1:-1] | padded[..., 1:-1, :-2] | padded[..., 1:-1, 2:]


def image_metrics(sr: Tensor, hr: Tensor, lr: Tensor, mask: Tensor, scale: int,
                  degradation: str = "bicubic", options: DegradationOptions | None = None) -> dict[str, Tensor]:
    """Per-image numbers, each float [B], from SR/HR [B, 1, H, W] and LR [B, 1, H/scale, W/scale] in [0, 1].

    psnr, ssim: the whole image (see psnr and ssim).
    fg_psnr, fg_ssim: the same within `mask` only (PSNR over the mask's pixels; the SSIM map averaged
    over them); NaN for an image whose mask is empty (no brain to score).
    lr_psnr: PSNR of degrade(SR) against LR, how far the output strays from what was measured
    (medivision.inference.consistency.lr_consistency_psnr, as enhance reports it).
    bg_mean: the mean of SR outside `mask` (the background, in [0, 1] units: a real scan's noise floor there is
    not 0); NaN for an image that is all brain.
    """
    weights = mask.float()
    pixels = weights.flatten(1).sum(1).clamp_min(1.0)
    whole, ssim_map = structural_similarity_index_measure(sr, hr, data_range=1.0, reduction="none",
                                                          return_full_image=True)
    inside = [peak_signal_noise_ratio(s[m], h[m], data_range=1.0).clamp_max(MAX_PSNR) if m.any()
              else sr.new_tensor(float("nan")) for s, h, m in zip(sr, hr, mask)]
    return {
        "psnr": psnr(sr, hr),
        "ssim": whole,
        "fg_psnr": torch.stack(inside),
        "fg_ssim": torch.where(weights.flatten(1).sum(1) > 0, (ssim_map * weights).flatten(1).sum(1) / pixels,
                               float("nan")),
        "lr_psnr": torch.from_numpy(lr_consistency_psnr(sr.cpu().numpy(), lr.cpu().numpy(), scale,
                                                        ForwardModel.of(degradation, options))).float(),
        "bg_mean": background_mean(sr, mask),
    }


def background_mean(image: Tensor, mask: Tensor) -> Tensor:
    """float [B]: the mean of each image [B, 1, H, W] outside its mask bool [B, 1, H, W]; NaN where nothing is
    outside."""
    outside = (~mask).float()
    count = outside.flatten(1).sum(1)
    return torch.where(count > 0, (image * outside).flatten(1).sum(1) / count.clamp_min(1.0), float("nan"))


UNCERTAINTY_METRICS = ("uncertainty", "corr", "error_most", "error_least")


def uncertainty_agreement(spread: Tensor, sr: Tensor, hr: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """How well an uncertainty map points at the real errors, per image, each float [B], within `mask` (the brain:
    outside it both are near 0, which would make any map look good).

    spread, sr, hr: float [B, 1, H, W] (the map and SR in [0, 1] units); mask: bool [B, 1, H, W].
    uncertainty: the map's mean; corr: Pearson correlation of the map and |SR - HR| over the pixels;
    error_most, error_least: mean |SR - HR| over the most and the least uncertain tenth of the pixels.
    NaN for images with fewer than 10 mask pixels.
    """
    numbers: dict[str, list[Tensor]] = {name: [] for name in UNCERTAINTY_METRICS}
    nan = sr.new_tensor(float("nan"))
    for u, s, h, m in zip(spread, sr, hr, mask):
        u, error = u[m], (s - h).abs()[m]
        if u.numel() < 10:
            for name in UNCERTAINTY_METRICS:
                numbers[name].append(nan)
            continue
        tenth = u.numel() // 10
        order = torch.argsort(u)
        numbers["uncertainty"].append(u.mean())
        numbers["corr"].append(torch.corrcoef(torch.stack([u, error]))[0, 1])
        numbers["error_most"].append(error[order[-tenth:]].mean())
        numbers["error_least"].append(error[order[:tenth]].mean())
    return {name: torch.stack(values) for name, values in numbers.items()}
