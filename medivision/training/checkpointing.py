"""Checkpoints that survive crashes and resume exactly: atomic writes, data-only reads, random state.

`trainer.plugins` holds AtomicCheckpointIO, `callbacks` RandomState and StepCheckpoint
(medivision/conf/trainer/default.yaml, medivision/conf/callbacks/default.yaml); medivision.data.loader.ResumableLoader
supplies the data position.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from medivision.data.cache import save_atomic
from medivision.inference.checkpoints import load_checkpoint

# With manual optimization Lightning warns that a step-triggered checkpoint holds the weights after the
# optimizer step; that is what a checkpoint to resume from must hold (the loops record the batch as done).
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization and every_n_train_steps")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside its target, syncs it, then renames it into place.

    A crash or a kill during a save leaves the previous file as it was (at worst a hidden
    `.NAME.*.tmp` file beside it). Lightning's own writer stages the file in the system temp folder and
    moves it across, which is a plain, interruptible copy when that folder is on another file system.
    Reading goes through medivision.inference.checkpoints.load_checkpoint: tensors and plain containers only
    (weights_only=True, whatever the caller asks), with a one-line error naming a bad file.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        save_atomic(checkpoint, Path(path))

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path)


class StepCheckpoint(ModelCheckpoint):
    """Writes last.ckpt every `every_n_train_steps` optimizer steps (two per GAN batch), mid-epoch too.

    Nothing else: the epoch-end checkpoints (best and last) are the monitored ModelCheckpoint's job, so this
    one only bounds what a killed run loses. None (the default) turns it off. It writes to the same last.ckpt
    (no last-v1.ckpt), which `ckpt_path=last` finds.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int | None = None) -> None:
        super().__init__(dirpath=dirpath, every_n_train_steps=every_n_train_steps, every_n_epochs=0, save_top_k=0,
                         save_last=True, enable_version_counter=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning would write a last.ckpt here if this callback never had; the monitored one has."""


class RandomState(L.Callback):
    """Keeps torch's CPU (and CUDA) random generator states in checkpoints and restores them on resume.

    Training draws augmentation and degradation noise from these generators, so a run resumed from a
    mid-epoch checkpoint goes on with exactly the draws the uninterrupted run made.
    """

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["cpu"])
        cuda = state_dict.get("cuda")
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
