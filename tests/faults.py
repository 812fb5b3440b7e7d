"""Faults for real training runs, switched on through the configs: NaN batches, crashes while saving.

Used as `data._target_=tests.faults.NaNBatches` and `+callbacks.x._target_=tests.faults.KillWhileSaving`
in runs of medivision.train, in-process or in a subprocess (which then needs the repository on sys.path).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

import lightning as L
import torch

from medivision.data.datamodule import SRDataModule


class NaNBatches(SRDataModule):
    """SRDataModule whose training batches number `nan_batches`, or `nan_from` and later, have NaN inputs.

    Batches are counted from 0 over the whole run. NaN LR makes SR, and so every loss, NaN.
    """

    def __init__(self, *args, nan_batches: Sequence[int] = (), nan_from: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.nan_batches = set(nan_batches)
        self.nan_from = nan_from
        self.training_batches = 0

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        batch = super().on_after_batch_transfer(batch, dataloader_idx)
        if self.trainer is not None and self.trainer.training:
            number, self.training_batches = self.training_batches, self.training_batches + 1
            if number in self.nan_batches or (self.nan_from is not None and number >= self.nan_from):
                batch["lr"] = torch.full_like(batch["lr"], float("nan"))
        return batch


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("this object cannot be saved")


class _KillsWhenPickled:
    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGKILL)


class _SaveFault(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step
        self.trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.trainer = trainer

    def fault(self) -> object:
        raise NotImplementedError

    def state_dict(self) -> dict:
        # Lightning pickles callback states as part of the checkpoint: this object goes off mid-write.
        if self.trainer is not None and self.trainer.global_step >= self.step:
            return {"fault": self.fault()}
        return {}


class FailWhileSaving(_SaveFault):
    """From global step `step` on, every checkpoint save raises an exception while the file is written."""

    def fault(self) -> object:
        return _Unpicklable()


class KillWhileSaving(_SaveFault):
    """The first checkpoint save at or after global step `step` SIGKILLs the process while writing the file."""

    def fault(self) -> object:
        return _KillsWhenPickled()
