"""Per-image quality numbers for evaluation: PSNR/SSIM on the whole image and on the brain, LR-consistency."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

from medivision.data.degradations import DegradationOptions
from medivision.inference.consistency import lr_consistency_psnr

METRICS = ("psnr", "ssim", "fg_psnr", "fg_ssim", "lr_psnr")


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

    psnr, ssim: the whole image, data range 1 (torchmetrics' PSNR over dim (1, 2, 3) and its Gaussian
    11x11 SSIM: their means are what training logs as test/psnr and test/ssim).
    fg_psnr, fg_ssim: the same within `mask` only (MSE over the mask's pixels; the SSIM map averaged
    over them).
    lr_psnr: PSNR of degrade(SR) against LR, how far the output strays from what was measured.
    """
    weights = mask.float()
    pixels = weights.flatten(1).sum(1).clamp_min(1.0)
    squared = (sr - hr).pow(2)
    ssim, ssim_map = structural_similarity_index_measure(sr, hr, data_range=1.0, reduction="none",
                                                         return_full_image=True)
    return {
        "psnr": _psnr(squared.flatten(1).mean(1)),
        "ssim": ssim,
        "fg_psnr": _psnr((squared * weights).flatten(1).sum(1) / pixels),
        "fg_ssim": (ssim_map * weights).flatten(1).sum(1) / pixels,
        "lr_psnr": lr_consistency_psnr(sr, lr, scale, degradation, options),
    }


def _psnr(mse: Tensor) -> Tensor:
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))
