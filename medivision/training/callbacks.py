"""Lightning callbacks of MediVision."""

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger

from medivision.data.degradations import upsample_bicubic
from medivision.report.panels import brain_samples, column_names, save_panel


class SamplePanels(L.Callback):
    """After each validation epoch: a panel of `num_images` validation images (LR, bicubic, SR, HR, error map).

    The images are chosen once, at the start of fit, spread over the validation images that show most brain
    (brain_samples), so that every epoch's panel shows the same anatomy. Saved as
    `<run dir>/samples/val_epochNNN.png` and logged to W&B as `val/samples` with the column names as caption.
    Rank 0 only.
    """

    def __init__(self, num_images: int = 4, error_gain: float = 4.0):
        self.num_images = num_images
        self.error_gain = error_gain
        self.positions: list[int] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.positions = brain_samples(trainer.datamodule.val_set.hr, self.num_images)

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self.positions:
            return
        datamodule, positions = trainer.datamodule, self.positions
        val_set = datamodule.val_set
        raw = {"hr": val_set.hr[positions], "label": val_set.labels[positions], "index": val_set.rows[positions]}
        batch = datamodule.evaluation_batch({key: value.to(pl_module.device) for key, value in raw.items()})
        lr, hr = batch["lr"], batch["hr"]
        sr, bicubic = pl_module(lr), upsample_bicubic(lr, pl_module.scale)
        rows = [(f"val #{position}", lr[i], bicubic[i], sr[i], hr[i]) for i, position in enumerate(positions)]
        path = Path(trainer.default_root_dir) / "samples" / f"val_epoch{trainer.current_epoch:03d}.png"
        pixels = save_panel(path, rows, self.error_gain)
        caption = f"epoch {trainer.current_epoch}: " + " | ".join(column_names(self.error_gain)).replace("\n", " ")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("val/samples", [pixels], caption=[caption])
