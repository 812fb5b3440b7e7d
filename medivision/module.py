"""The LightningModule: SRResNet pixel-loss pretraining, then the SRGAN stage, with an EMA generator."""

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from medivision.checkpoints import ema_generator_weights, load_checkpoint
from medivision.data.degradations import upsample_bicubic
from medivision.ema import EMA
from medivision.losses import AdversarialLoss, PerceptualLoss, pixel_loss
from medivision.models import Discriminator, SRResNet

OptimizerFactory = Callable[..., torch.optim.Optimizer]
log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """Too many training steps in a row had a non-finite loss; the message says what to do."""


def _metrics() -> nn.ModuleDict:
    """PSNR/SSIM of the model and of the bicubic baseline; images in [0, 1], PSNR per image then averaged."""
    return nn.ModuleDict({
        "psnr": PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)),
        "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
        "bicubic_psnr": PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)),
        "bicubic_ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
    })


class SRModule(L.LightningModule):
    """4x super-resolution of batches {"lr": [B,1,32,32], "hr": [B,1,128,128]}, both float in [0, 1].

    For the first `pretrain_epochs` epochs (or always, when `gan` is false) the generator learns from the
    pixel loss alone. Then each batch runs a discriminator block and a generator block (pixel + perceptual +
    adversarial), each under `toggled_optimizer`. A term whose weight is 0 is not computed; with an
    adversarial weight of 0 no discriminator is built. Validation, test and export use the EMA generator.
    Lightning's `global_step` counts optimizer steps (two per GAN batch), so schedules count epochs.

    A non-finite (NaN/Inf) loss skips the optimizer update it would feed: a bad discriminator loss skips
    the whole batch (D and G), a bad generator loss the G update; either way the networks' buffers that
    forward passes update (BatchNorm statistics, spectral-norm vectors) go back to their values before
    the batch, so one bad batch leaves no NaN behind. Skipped batches are counted
    (`skipped_steps`, logged as train/skipped_steps each epoch); after `max_bad_steps` bad batches in a
    row, training stops with TrainingDiverged, leaving the last checkpoint, written before, as it was.
    """

    def __init__(
        self,
        generator: dict,
        discriminator: dict,
        loss: dict,
        optimizer_g: OptimizerFactory,
        optimizer_d: OptimizerFactory,
        gan: bool = True,
        pretrain_epochs: int = 0,
        ema_decay: float = 0.999,
        gradient_clip: float = 0.0,
        lr_milestones: Sequence[int] = (),
        lr_gamma: float = 0.5,
        init_from: str | None = None,
        max_bad_steps: int = 20,
    ):
        super().__init__()
        # train.py logs the whole Hydra config; the module keeps its own arguments for checkpoints only
        self.save_hyperparameters(ignore=["optimizer_g", "optimizer_d"], logger=False)
        self.automatic_optimization = False
        for name in ("pixel", "perceptual", "adversarial"):
            if loss[name]["weight"] < 0:
                raise ValueError(f"model.loss.{name}.weight={loss[name]['weight']} must be >= 0")
        if pretrain_epochs < 0:
            raise ValueError(f"model.pretrain_epochs={pretrain_epochs} must be >= 0")
        if max_bad_steps < 1:
            raise ValueError(f"model.max_bad_steps={max_bad_steps} must be at least 1")
        self.bad_steps = 0  # batches in a row whose loss was not finite
        self.skipped_steps = 0  # all such batches in the run (kept in checkpoints)
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        self.loss_cfg = loss
        self.generator = SRResNet(**generator)
        if init_from:
            self.generator.load_state_dict(_ema_generator_weights(init_from))
        self.ema = EMA(self.generator, ema_decay)
        self.scale = self.generator.scale
        uses_adversarial = gan and loss["adversarial"]["weight"] > 0
        self.discriminator = Discriminator(**discriminator) if uses_adversarial else None
        self.adversarial = AdversarialLoss(loss["adversarial"]["kind"])
        perceptual = loss["perceptual"]
        self.perceptual = (
            PerceptualLoss(perceptual["layer"], perceptual["weights"], perceptual["criterion"])
            if gan and perceptual["weight"] > 0
            else None
        )
        self.metrics = nn.ModuleDict({"val": _metrics(), "test": _metrics()})

    @property
    def gan_stage(self) -> bool:
        return self.hparams.gan and self.current_epoch >= self.hparams.pretrain_epochs

    def forward(self, lr: Tensor) -> Tensor:
        """EMA generator: LR [B, 1, h, w] in [0, 1] -> SR [B, 1, 4h, 4w] clamped to [0, 1]."""
        return self.ema.module(lr).clamp(0.0, 1.0)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        lr, hr = batch["lr"], batch["hr"]
        optimizers = self.optimizers()
        opt_g, opt_d = optimizers if isinstance(optimizers, list) else (optimizers, None)
        buffers = self._net_buffers()
        before = [buffer.clone() for buffer in buffers]  # device copies of a few small tensors; no sync
        sr = self.generator(lr)
        losses = {}
        if self.gan_stage and opt_d is not None:
            with self.toggled_optimizer(opt_d):
                real_logits = self.discriminator(hr)
                losses["d_loss"] = self.adversarial.discriminator(real_logits, self.discriminator(sr.detach()))
                if not self._finite(losses["d_loss"], "d_loss", buffers, before):
                    return
                self._optimize(opt_d, losses["d_loss"])
        with self.toggled_optimizer(opt_g):
            losses.update(self.generator_losses(sr, hr))
            if not self._finite(losses["g_loss"], "g_loss", buffers, before):
                return
            self._optimize(opt_g, losses["g_loss"])
        self.bad_steps = 0
        self.ema.update(self.generator, self.global_step)
        self._log_losses(losses, hr.shape[0])

    def generator_losses(self, sr: Tensor, hr: Tensor) -> dict[str, Tensor]:
        """Weighted loss terms for the generator and their sum "g_loss"; only the pixel term in pretraining."""
        cfg = self.loss_cfg
        losses = {"pixel": cfg["pixel"]["weight"] * pixel_loss(sr, hr, cfg["pixel"]["kind"])}
        if self.gan_stage and self.perceptual is not None:
            losses["perceptual"] = cfg["perceptual"]["weight"] * self.perceptual(sr, hr)
        if self.gan_stage and self.discriminator is not None:
            real = self.discriminator(hr).detach() if self.adversarial.kind == "relativistic" else None
            losses["adversarial"] = cfg["adversarial"]["weight"] * self.adversarial.generator(
                self.discriminator(sr), real
            )
        losses["g_loss"] = sum(losses.values())
        return losses

    def _net_buffers(self) -> list[Tensor]:
        """The buffers of G and D (BatchNorm statistics, spectral-norm vectors), which forward passes change."""
        nets = [self.generator] + ([self.discriminator] if self.discriminator is not None else [])
        return [buffer for net in nets for buffer in net.buffers()]

    def _finite(self, loss: Tensor, name: str, buffers: list[Tensor], before: list[Tensor]) -> bool:
        """Whether `loss` is finite on every process; if not, put `buffers` back to `before`, count the batch as
        skipped, and stop after too many in a row.

        Reading the answer costs one host-device sync per optimizer step (one bool; under DDP also one
        all-reduce so that every process skips together): the update must be decided before it runs.
        """
        finite = self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss).all()), all=True)
        if finite:
            return True
        for buffer, saved in zip(buffers, before):
            buffer.copy_(saved)
        self.bad_steps += 1
        self.skipped_steps += 1
        log.warning("skipped a training batch: %s is not finite (epoch %d, global step %d, %d in a row)",
                    name, self.current_epoch, self.global_step, self.bad_steps)
        if self.bad_steps >= self.hparams.max_bad_steps:
            paths = [p for callback in self.trainer.checkpoint_callbacks
                     for p in (callback.last_model_path, callback.best_model_path)]
            written = [path for path in paths if path and Path(path).is_file()]
            last = max(written, key=lambda path: Path(path).stat().st_mtime_ns, default="")
            raise TrainingDiverged(
                f"training stopped: {self.bad_steps} batches in a row had a non-finite loss ({name} is NaN or "
                f"Inf; epoch {self.current_epoch}, global step {self.global_step}); their updates were skipped, "
                f"so no weights were changed by them. Last checkpoint: {last or 'none written yet'}. Lower the "
                "learning rates (model.optimizer_g.lr, model.optimizer_d.lr), set model.gradient_clip, or check "
                "the data, then resume with ckpt_path=<that checkpoint> (model.max_bad_steps sets the limit)"
            )
        return False

    def _log_losses(self, losses: dict[str, Tensor], batch_size: int) -> None:
        """train/<name>_step: this process's batch; train/<name>_epoch: the epoch mean over all processes
        (synchronised once, at the end of the epoch, not at every step)."""
        self.log_dict({f"train/{k}_step": v for k, v in losses.items()}, on_step=True, on_epoch=False,
                      batch_size=batch_size)
        self.log_dict({f"train/{k}_epoch": v for k, v in losses.items()}, on_step=False, on_epoch=True,
                      batch_size=batch_size, sync_dist=True)

    def _optimize(self, optimizer, loss: Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.hparams.gradient_clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip,
                                gradient_clip_algorithm="norm")
        optimizer.step()

    def on_train_epoch_end(self) -> None:
        """Step decay: lr = initial lr * lr_gamma ** (number of lr_milestones reached); skipped batches so far."""
        self.log("train/skipped_steps", float(self.skipped_steps), on_epoch=True)
        reached = sum(self.current_epoch + 1 >= milestone for milestone in self.hparams.lr_milestones)
        optimizers = self.optimizers()
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * self.hparams.lr_gamma**reached

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["skipped_steps"], checkpoint["bad_steps"] = self.skipped_steps, self.bad_steps

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.skipped_steps, self.bad_steps = checkpoint.get("skipped_steps", 0), checkpoint.get("bad_steps", 0)

    def validation_step(self, batch: dict, batch_idx: int) -> dict[str, Tensor]:
        return self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> dict[str, Tensor]:
        return self._evaluate(batch, "test")

    def _evaluate(self, batch: dict, stage: str) -> dict[str, Tensor]:
        lr, hr = batch["lr"], batch["hr"]
        sr = self(lr)
        bicubic = upsample_bicubic(lr, self.scale)
        metrics = self.metrics[stage]
        for name, image in (("psnr", sr), ("ssim", sr), ("bicubic_psnr", bicubic), ("bicubic_ssim", bicubic)):
            metrics[name].update(image, hr)
            self.log(f"{stage}/{name}", metrics[name], on_epoch=True, batch_size=hr.shape[0])
        return {"sr": sr, "bicubic": bicubic}

    def configure_optimizers(self):
        optimizers = [self.optimizer_g(self.generator.parameters())]
        if self.discriminator is not None:
            optimizers.append(self.optimizer_d(self.discriminator.parameters()))
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        return optimizers


def _ema_generator_weights(path: str) -> dict[str, Tensor]:
    """The EMA generator's state dict from a MediVision checkpoint (to start the GAN stage from SRResNet)."""
    return ema_generator_weights(load_checkpoint(path), f"model.init_from={path}")
