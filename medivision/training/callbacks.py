"""Lightning callbacks of MediVision: sample panels, learning rates and the per-image test table."""

from pathlib import Path

import lightning as L
import torch
import wandb
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor
from torchmetrics import CatMetric

from medivision.data.degradations import upsample_bicubic
from medivision.report.metrics import psnr, ssim
from medivision.report.panels import brain_samples, column_names, save_panel

# The per-image test table: the model's numbers, then bicubic upsampling's on the same images (as test/psnr, ...).
NUMBERS = ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")
TABLE_COLUMNS = ("image", "file", "slice", "class", *NUMBERS, "sr", "hr")


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


class LearningRates(LearningRateMonitor):
    """Lightning's LearningRateMonitor: each optimizer's learning rate every `log_every_n_steps` batches, under
    its schedule's name (`lr/generator`, `lr/discriminator`, from SRModule.configure_optimizers).

    Per step rather than per epoch: the monitor's epoch-start hook runs before the module's, which steps the
    schedules for the new epoch, so at each milestone an epoch-interval monitor would log the rate of the
    epoch before. Without a logger (logger=none) it logs nothing, where Lightning's refuses to train.
    """

    def __init__(self) -> None:
        super().__init__(logging_interval="step")

    def on_train_start(self, trainer: L.Trainer, *args, **kwargs) -> None:
        if trainer.loggers:
            super().on_train_start(trainer, *args, **kwargs)


class PerImageTestTable(L.Callback):
    """After each test stage: the W&B table `test/per_image`, one row per test image, sorted by position.

    Columns: image (position in the test split), file, slice (-1 for 2-D images), class; psnr, ssim,
    bicubic_psnr, bicubic_ssim of that image (medivision.report.metrics, the per-image numbers whose means are
    test/psnr, ...); then `sr` and `hr`, images with captions for `num_images` rows (chosen among the tested
    images as the sample panels are, brain_samples) and empty for the rest, so the table stays small on a
    large test split. The brain-only and LR-consistency numbers are evaluate's: its brain mask costs more
    than a test stage should. The numbers are gathered from every process (torchmetrics CatMetric); rank 0
    logs the table. Nothing is computed when no W&B logger is configured.
    """

    def __init__(self, num_images: int = 8):
        self.num_images = num_images
        self.values: dict[str, CatMetric] = {}

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logs_to_wandb = any(isinstance(logger, WandbLogger) for logger in trainer.loggers)
        names = ("index", *NUMBERS) if logs_to_wandb else ()
        # a NaN is kept, so that every column keeps its rows in step; indices stay int64 (float32 holds
        # integers exactly only up to 2**24)
        self.values = {name: CatMetric(nan_strategy="disable").to(pl_module.device) for name in names}
        if "index" in self.values:
            self.values["index"].set_dtype(torch.int64)  # after .to(), which sets the default dtype again

    @torch.no_grad()
    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: dict[str, Tensor],
                          batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        if not self.values:
            return
        hr = batch["hr"]
        self.values["index"].update(batch["index"])
        for prefix, images in (("", outputs["sr"]), ("bicubic_", outputs["bicubic"])):
            self.values[f"{prefix}psnr"].update(psnr(images, hr))
            self.values[f"{prefix}ssim"].update(ssim(images, hr))

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.values:
            return
        values = {name: metric.compute().tolist() for name, metric in self.values.items()}  # every process syncs
        self.values = {}
        if not trainer.is_global_zero:
            return
        test_set, class_names = trainer.datamodule.test_set, trainer.datamodule.class_names
        position = {int(row): at for at, row in enumerate(test_set.rows)}  # "index" is the row in the cached data
        tested = sorted((position[row], numbers) for row, numbers in unique_rows(values).items())
        positions = [at for at, _ in tested]
        shown = [positions[i] for i in brain_samples(test_set.hr[positions], self.num_images)]
        images = self._images(trainer, pl_module, shown)
        data = [[at, test_set.paths[at], int(test_set.slice_index[at]), class_names[int(test_set.labels[at])],
                 *numbers, *images.get(at, (None, None))] for at, numbers in tested]
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table("test/per_image", columns=list(TABLE_COLUMNS), data=data)

    @torch.no_grad()
    def _images(self, trainer: L.Trainer, pl_module: L.LightningModule,
                positions: list[int]) -> dict[int, tuple[wandb.Image, wandb.Image]]:
        """{position: (SR image, HR image)} of the test images at `positions`, with captions."""
        if not positions:
            return {}
        datamodule, test_set = trainer.datamodule, trainer.datamodule.test_set
        raw = {"hr": test_set.hr[positions], "label": test_set.labels[positions], "index": test_set.rows[positions]}
        batch = datamodule.evaluation_batch({key: value.to(pl_module.device) for key, value in raw.items()})
        sr = pl_module(batch["lr"])
        return {at: (wandb.Image(_pixels(sr[i]), caption=f"test #{at}: SR {pl_module.scale}x, a model estimate, "
                                                         "not a measurement"),
                     wandb.Image(_pixels(batch["hr"][i]), caption=f"test #{at}: HR (reference)"))
                for i, at in enumerate(positions)}


def unique_rows(values: dict[str, list]) -> dict[int, tuple]:
    """{image index: its NUMBERS}, each image once: a DistributedSampler pads the last batches of the
    processes with repeated images, so a gathered index can occur twice."""
    return dict(zip(map(int, values["index"]), zip(*(values[name] for name in NUMBERS))))


def _pixels(image: Tensor):
    """float [1, H, W] in [0, 1] -> uint8 numpy [H, W], for wandb.Image."""
    return image[0].mul(255).round().clamp(0, 255).byte().cpu().numpy()
