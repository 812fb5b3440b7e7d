"""Faults for real training runs, switched on through the configs: NaN batches, crashes while saving.

Used as `data._target_=tests.faults.nan_batches` and `+callbacks.x._target_=tests.faults.KillWhileSaving`
in runs of medivision.train, in-process or in a subprocess (which then needs the repository on sys.path).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

import lightning as L
import torch

from medivision.data.datamodule import SRDataModule
from medivision.data.settings import data_settings


class NaNBatches(SRDataModule):
    """SRDataModule whose training batches number `nan_batches`, or `nan_from` and later, have NaN inputs.

    Batches are counted from 0 over the whole run. NaN LR makes SR, and so every loss, NaN.
    """

    def __init__(self, *args, nan_batches: Sequence[int] = (), nan_from: int | None = None, **groups) -> None:
        super().__init__(*args, **groups)
        self.nan_batches = set(nan_batches)
        self.nan_from = nan_from
        self.training_batches = 0

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        batch = super().on_after_batch_transfer(batch, dataloader_idx)
        # a bare tensor is the module's example input (the model summary's), not a training batch
        if self.trainer is not None and self.trainer.training and isinstance(batch, dict):
            number, self.training_batches = self.training_batches, self.training_batches + 1
            if number in self.nan_batches or (self.nan_from is not None and number >= self.nan_from):
                batch["lr"] = torch.full_like(batch["lr"], float("nan"))
        return batch


def nan_batches(nan_batches: Sequence[int] = (), nan_from: int | None = None, **config) -> NaNBatches:
    """NaNBatches from the flat data.* keys, as medivision.data.settings.data_module builds SRDataModule."""
    return NaNBatches(**data_settings(**config), nan_batches=nan_batches, nan_from=nan_from)


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("this object cannot be saved")


class _KillsWhenPickled:
    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGKILL)


class _SaveFault(L.Callback):
    """Goes off in the first checkpoint write at global step `step` or later, after letting `spare` such
    writes through."""

    def __init__(self, step: int, spare: int = 0) -> None:
        self.step = step
        self.spare = spare
        self.trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.trainer = trainer

    def fault(self) -> object:
        raise NotImplementedError

    def state_dict(self) -> dict:
        # Lightning pickles callback states as part of the checkpoint: this object goes off mid-write.
        if self.trainer is None or self.trainer.global_step < self.step:
            return {}
        if self.spare > 0:
            self.spare -= 1
            return {}
        return {"fault": self.fault()}


class FailWhileSaving(_SaveFault):
    """Checkpoint saves from global step `step` on (after `spare` of them) raise an exception mid-write."""

    def fault(self) -> object:
        return _Unpicklable()


class KillWhileSaving(_SaveFault):
    """The first checkpoint save at or after global step `step` (after `spare`) SIGKILLs the process mid-write."""

    def fault(self) -> object:
        return _KillsWhenPickled()
