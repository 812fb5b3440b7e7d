"""Lightning callbacks of MediVision."""

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from torchvision.utils import save_image

from medivision.report.panels import PANEL_COLUMNS, make_panel


class SamplePanels(L.Callback):
    """After each validation epoch: a panel of the first validation images (LR, bicubic, SR, HR, error map).

    Saved as `<run dir>/samples/val_epochNNN.png` and logged to W&B as `val/samples`. Rank 0 only.
    """

    def __init__(self, num_images: int = 4, error_gain: float = 4.0):
        self.num_images = num_images
        self.error_gain = error_gain

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        n = self.num_images
        panel = make_panel(batch["lr"][:n], outputs["bicubic"][:n], outputs["sr"][:n], batch["hr"][:n],
                           self.error_gain)
        path = Path(trainer.default_root_dir) / "samples" / f"val_epoch{trainer.current_epoch:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(panel, path)
        caption = " | ".join(PANEL_COLUMNS).replace("gain", f"{self.error_gain:g}")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("val/samples", [panel.permute(1, 2, 0).numpy()], caption=[caption])
