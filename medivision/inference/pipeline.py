"""The one inference pipeline, for every backend: tiling, the self-ensemble and its uncertainty map, data
consistency and the LR-consistency check, over float32 numpy arrays in [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import numpy as np

from medivision.data.degradation_options import ForwardModel
from medivision.inference.consistency import lr_consistency_psnr, make_consistent
from medivision.inference.ensemble import Ensemble, self_ensemble
from medivision.inference.models import SRModel
from medivision.inference.tiling import super_resolve
from medivision.io.jobs import Job, Result, Written


class Upscaled(NamedTuple):
    """What an Upscaler makes of a batch of N unit images."""

    sr: np.ndarray  # float32 [N, C, s*h, s*w] in [0, 1]
    spread: np.ndarray | None  # the uncertainty map, same shape and units (ensemble=8 only)
    lr_psnr: list[float]  # LR-consistency PSNR per image
    mean_spread: list[float]  # the uncertainty map's mean per image ([] without one)


@dataclass
class Upscaler:
    """A model with a run's tiling, ensemble and consistency settings: unit images in, SR unit images out.

    forward: the noise-free forward model of the degradation the model was trained for (ForwardModel.of), which
    the LR-consistency check, and back-projection with consistency=True, compare outputs with.
    """

    model: SRModel
    forward: ForwardModel
    tile: int = 256
    overlap: int = 32
    batch_size: int = 16
    consistency: bool = False
    iterations: int = 20
    ensemble: Ensemble = 1

    def __call__(self, unit: np.ndarray) -> Upscaled:
        """float32 [N, C, h, w] in [0, 1] -> the SR images, their uncertainty map and LR-consistency PSNRs."""
        lr = np.ascontiguousarray(unit, dtype=np.float32)
        scale = self.model.scale
        whole = partial(super_resolve, self.model, scale=scale, tile=self.tile, overlap=self.overlap,
                        batch_size=self.batch_size)
        sr, spread = self_ensemble(whole, lr, self.ensemble)
        if self.consistency:
            sr = make_consistent(sr, lr, scale, self.forward, self.iterations)
        lr_psnr = lr_consistency_psnr(sr, lr, scale, self.forward).tolist()
        if spread is None:
            return Upscaled(sr, None, lr_psnr, [])
        return Upscaled(sr, spread, lr_psnr, spread.reshape(len(spread), -1).mean(1).tolist())

    def chunks(self, unit: np.ndarray, done=lambda count: None):
        """Upscaled results of `unit` [N, C, h, w], batch_size images at a time (memory stays near one batch's
        output); `done(count)` is called after each."""
        for start in range(0, len(unit), self.batch_size):
            result = self(unit[start:start + self.batch_size])
            done(len(result.sr))
            yield result


class Processed(NamedTuple):
    """A job done: the files written, and the LR-consistency PSNR and mean uncertainty of each of its images."""

    written: Written
    lr_psnr: list[float]
    mean_spread: list[float]


def process(job: Job, upscaler: Upscaler, done=lambda count: None) -> Processed:
    """One job of a format handler (medivision.io.handlers): its images through the model batch by batch, each
    batch stored as the file keeps it (Job.store), then written; `done(count)` after each batch."""
    stored, lr_psnr, mean_spread = [], [], []
    for part in upscaler.chunks(job.unit, done):
        stored.append(job.store(Result(part.sr, part.spread)))
        lr_psnr += part.lr_psnr
        mean_spread += part.mean_spread
    spread = [part.spread for part in stored if part.spread is not None]
    whole = Result(np.concatenate([part.sr for part in stored]), np.concatenate(spread) if spread else None)
    return Processed(job.write(whole), lr_psnr, mean_spread)
