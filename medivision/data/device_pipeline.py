"""What happens to cached HR once it is on its device: float HR in [0, 1] (synthesized from tissue maps for
source "synth"), augmented when training, and its LR by the configured degradation. Everything here runs on the
batch's device, so only uint8 HR crosses the bus."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from medivision.data import degradations
from medivision.data.contrast import synthesize
from medivision.data.dataset import HRDataset, unit_range
from medivision.data.degradation_options import KINDS
from medivision.data.intensity_augment import augment_intensity
from medivision.data.settings import Augmentation, LowRes, Source

# Rows of the evaluation tables made at once: bounds the memory of a synth or noisy degradation pass.
CHUNK = 256


def unit_hr(stored: Tensor, source: Source, seeds: list[int] | None = None) -> Tensor:
    """Cached HR [B, C, H, W] -> float HR [B, 1, H, W] in [0, 1]: the image itself, or for synth a contrast
    drawn from the tissue maps (seeded per image with `seeds`, fresh without)."""
    hr = unit_range(stored)
    return synthesize(hr, source.contrast, seeds) if source.source == "synth" else hr


def training_pair(stored: Tensor, source: Source, lowres: LowRes, augmentation: Augmentation) -> tuple[Tensor, Tensor]:
    """Cached HR [B, C, H, W] (uint8 in [0, 255], or float in [0, 1]) on its device -> what a training step
    gets: float HR [B, 1, H, W] in [0, 1] (for synth: fresh contrasts), randomly flipped/rotated with
    `augmentation.flips`, changed in intensity with `augmentation.intensity`, and its LR with fresh noise."""
    hr = unit_hr(stored, source)
    if augmentation.flips:
        hr = degradations.augment(hr)
    hr = augment_intensity(hr, augmentation.intensity)
    return hr, degradations.degrade(hr, lowres.scale, lowres.degradation, lowres.options)


def evaluation_tables(datasets: Iterable[HRDataset], num_rows: int, device: torch.device, source: Source,
                      lowres: LowRes, seed: int) -> tuple[Tensor | None, Tensor]:
    """The HR (synth only; other sources' HR is the cached image) and LR of every image of `datasets`, by row of
    the cached data set ("index"): float [num_rows, 1, H, W] and [num_rows, 1, h, w] in [0, 1] on `device`;
    other rows hold NaN.

    The synthetic contrasts and the noise of the noisy degradations are drawn from `seed` and each image's row
    (degradations.sample_seeds), so an image's HR and LR do not depend on its batch and are the same in every
    run. 5,712 rows take 23 MB.
    """
    size = source.hr_size // lowres.scale
    table_lr = torch.full((num_rows, 1, size, size), float("nan"), device=device)
    table_hr = (torch.full((num_rows, 1, source.hr_size, source.hr_size), float("nan"), device=device)
                if source.source == "synth" else None)
    for dataset in datasets:
        if len(dataset) == 0:  # a test-only source (real_scans) has no validation images
            continue
        for stored, rows in zip(dataset.hr.split(CHUNK), dataset.rows.split(CHUNK)):
            seeds = degradations.sample_seeds(seed, rows)
            hr = unit_hr(stored.to(device), source, seeds)
            table_lr[rows.to(device)] = degradations.degrade(
                hr, lowres.scale, lowres.degradation, lowres.options, seeds if KINDS[lowres.degradation].draws else None
            )
            if table_hr is not None:
                table_hr[rows.to(device)] = hr
    return table_hr, table_lr
