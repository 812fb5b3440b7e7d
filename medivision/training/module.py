"""The LightningModule: SRResNet pixel-loss pretraining, then the SRGAN stage, with an EMA generator."""

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from medivision.data.degradations import upsample_bicubic
from medivision.inference.checkpoints import ema_generator_weights, load_checkpoint
from medivision.io.intensity import INTENSITY_POLICIES
from medivision.nets import ClampedGenerator, Discriminator, SRResNet
from medivision.nets.speed import apply_speed_options
from medivision.training.ema import EMA
from medivision.training.losses import AdversarialOptions, GeneratorLoss, LossOptions, PerceptualOptions, PixelOptions
from medivision.training.nan_guard import NaNGuard
from medivision.training.schedule import Optimization, Stages

OptimizerFactory = Callable[..., torch.optim.Optimizer]
# Within `toggle(optimizer)` only that optimizer's parameters take gradients (LightningModule.toggled_optimizer).
Toggle = Callable[[torch.optim.Optimizer], AbstractContextManager]
# update(optimizer, loss, *earlier losses of the batch): backward of `loss`, then the optimizer's step.
Update = Callable[..., None]
T = TypeVar("T")
LOSS_NAMES = ("pixel", "perceptual", "adversarial", "g_loss", "d_loss")


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
    `channels_last` and `compile` change how the networks run, not what they compute (see nets/speed.py).
    `intensity` is not used in training: checkpoints keep it, so that every tool feeds the model the way its
    data was mapped to [0, 1] (medivision.io.intensity).

    The arguments are the `model` config as Hydra gives it, and checkpoints keep them as given (plain containers,
    which load as data): `generator` and `discriminator` are the keyword arguments of SRResNet and Discriminator
    (tools rebuild the generator from the checkpoint's copy), `loss` maps each term to its options. They are
    checked and turned into typed values here, once: the networks, `loss_options`, `stages`, `optimization`.

    A batch whose loss is not finite (NaN/Inf) changes nothing: the NaN guard (medivision.training.nan_guard)
    skips each update whose gradients are not finite, holds the EMA and puts the networks' buffers (BatchNorm
    statistics, spectral-norm vectors) back, all decided on the device, so that nothing in a training step
    waits for it. Skipped batches are counted (`skipped_steps`, logged as train/skipped_steps each epoch) and
    left out of the epoch-mean losses; when a check (every `log_every_n_steps` batches and at the epoch's end)
    finds that `max_bad_steps` batches in a row were bad, training stops with TrainingDiverged. Weights in
    checkpoints written meanwhile are those from before the bad batches.
    """

    def __init__(
        self,
        generator: Mapping[str, Any],
        discriminator: Mapping[str, Any],
        loss: Mapping[str, Mapping[str, Any]],
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
        channels_last: bool = False,
        compile: bool = False,
        intensity: str = "minmax",
    ):
        super().__init__()
        # train.py logs the whole Hydra config; the module keeps its own arguments for checkpoints only
        self.save_hyperparameters(ignore=["optimizer_g", "optimizer_d"], logger=False)
        self.automatic_optimization = False
        self.stages = _configured("model.", Stages, gan, pretrain_epochs)
        self.optimization = Optimization(tuple(lr_milestones), lr_gamma, gradient_clip)
        self.loss_options = _loss_options(loss)
        if intensity not in INTENSITY_POLICIES:
            raise ValueError(f"model.intensity={intensity!r} is not one of {', '.join(INTENSITY_POLICIES)}")
        self.guard = _configured("model.", NaNGuard, max_bad_steps=max_bad_steps)
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        self.generator = _configured("model.generator.", SRResNet, **generator)
        if init_from:
            self.generator.load_state_dict(_ema_generator_weights(init_from))
        self.ema = _configured("model.ema_", EMA, self.generator, decay=ema_decay)
        # Not a registered submodule: it wraps ema.module, whose weights the checkpoint holds once.
        self.__dict__["served"] = ClampedGenerator(self.ema.module)
        self.scale = self.generator.scale
        # One 32x32 LR slice (the research protocol's), so Lightning's model summary counts FLOPs instead of 0.
        self.example_input_array = torch.zeros(1, 1, 32, 32)
        # of the terms, only the perceptual one can fail to build: on its VGG layer name or weights file
        self.losses = _configured("model.loss.perceptual.", GeneratorLoss, self.loss_options, gan)
        self.discriminator = (_configured("model.discriminator.", Discriminator, **discriminator)
                              if gan and self.loss_options.adversarial.weight > 0 else None)
        self.metrics = nn.ModuleDict({"val": _metrics(), "test": _metrics()})
        # Epoch means of the training losses over the batches that were not skipped (synced across processes).
        self.epoch_losses = nn.ModuleDict({name: MeanMetric(nan_strategy="disable") for name in LOSS_NAMES})
        self._apply_speed_options(channels_last, compile)

    def _apply_speed_options(self, channels_last: bool, compile: bool) -> None:
        """model.channels_last and model.compile, applied only now, after the EMA copy: compiling in place wraps a
        module's own call, which a copy must not share (the EMA generator is not compiled)."""
        vgg = self.losses.perceptual.network if self.losses.perceptual is not None else None
        for network in (self.generator, self.discriminator, vgg):
            if network is not None:
                apply_speed_options(network, channels_last, compile)
        apply_speed_options(self.ema.module, channels_last)

    @property
    def gan_stage(self) -> bool:
        """Whether the current epoch trains the GAN (after pixel pretraining)."""
        return self.stages.gan_stage(self.current_epoch)

    def forward(self, lr: Tensor) -> Tensor:
        """EMA generator: LR [B, 1, h, w] in [0, 1] -> SR [B, 1, 4h, 4w] clamped to [0, 1]."""
        return self.__dict__["served"](lr)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        optimizers = self.optimizers()
        opt_g, opt_d = optimizers if isinstance(optimizers, list) else (optimizers, None)
        self.guard.start_batch(self._net_buffers(), self.global_step)
        losses = self.train_batch(batch["lr"], batch["hr"], opt_g, opt_d, self.toggled_optimizer, self._update)
        ok = self.guard.end_batch(losses, self.trainer.strategy.reduce)
        self.ema.update(self.generator, self.global_step, accept=ok)
        self._log_losses(losses, ok, batch["hr"].shape[0])

    def train_batch(self, lr: Tensor, hr: Tensor, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer | None,
                    toggle: Toggle, update: Update) -> dict[str, Tensor]:
        """The updates of one batch (LR [B, 1, h, w], HR [B, 1, 4h, 4w], in [0, 1]): in the GAN stage the
        discriminator block, then the generator block. Returns the losses, scalars: "d_loss" (GAN stage), "pixel",
        "perceptual", "adversarial" (those that apply), "g_loss". `toggle` and `update` are how the caller runs an
        optimizer: Lightning's (training_step) or plain PyTorch (medivision.benchmarks.training)."""
        sr = self.generator(lr)
        losses = {}
        if self.gan_stage and opt_d is not None:
            losses["d_loss"] = self.discriminator_step(sr, hr, opt_d, toggle, update)
        losses.update(self.generator_step(sr, hr, opt_g, toggle, update, *losses.values()))
        return losses

    def discriminator_step(self, sr: Tensor, hr: Tensor, optimizer: torch.optim.Optimizer, toggle: Toggle,
                           update: Update) -> Tensor:
        """D's loss on real `hr` and the generator's `sr`, detached, and D's update; returns the loss."""
        with toggle(optimizer):
            loss = self.losses.discriminator_loss(self.discriminator, sr, hr)
            update(optimizer, loss)
        return loss

    def generator_step(self, sr: Tensor, hr: Tensor, optimizer: torch.optim.Optimizer, toggle: Toggle,
                       update: Update, *earlier: Tensor) -> dict[str, Tensor]:
        """G's losses on `sr` (those of the current stage) and G's update, which `earlier` losses of the batch
        being non-finite also skip (NaN guard); returns the losses with their sum, "g_loss"."""
        with toggle(optimizer):
            losses = self.losses(sr, hr, self.discriminator, self.gan_stage)
            update(optimizer, losses["g_loss"], *earlier)
        return losses

    def _update(self, optimizer, loss: Tensor, *earlier: Tensor) -> None:
        """Backward and `optimizer`'s step, which the NaN guard skips when this or an `earlier` loss of the batch
        is not finite."""
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(self.guard.scale(loss, *earlier))
        optimizer.step()

    def on_before_optimizer_step(self, optimizer) -> None:
        """Inside optimizer.step(), after the callbacks' hooks and after a mixed-precision scaler unscaled the
        gradients: clipping, then the NaN guard's update."""
        if self.optimization.gradient_clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.optimization.gradient_clip,
                                gradient_clip_algorithm="norm")
        self.guard.step(optimizer)

    def _net_buffers(self) -> list[Tensor]:
        """The buffers of G and D (BatchNorm statistics, spectral-norm vectors), which forward passes change."""
        nets = [self.generator] + ([self.discriminator] if self.discriminator is not None else [])
        return [buffer for net in nets for buffer in net.buffers()]

    def _log_losses(self, losses: dict[str, Tensor], ok: Tensor, batch_size: int) -> None:
        """train/<name>_step: this process's batch (NaN when it was skipped); train/<name>_epoch: the mean
        over the epoch's batches that were not skipped, on all processes (synchronised once, at the end of
        the epoch, not at every step)."""
        self.log_dict({f"train/{k}_step": v for k, v in losses.items()}, on_step=True, on_epoch=False,
                      batch_size=batch_size)
        for name, value in losses.items():
            mean = self.epoch_losses[name]
            mean.update(torch.where(ok, value.detach(), 0.0), ok * float(batch_size))
            self.log(f"train/{name}_epoch", mean, on_step=False, on_epoch=True)

    def setup(self, stage: str) -> None:
        if stage == "fit":  # before anything runs the model, the model summary's example input included
            self.guard.check_precision(self.trainer)

    def on_fit_start(self) -> None:
        self.guard.setup(self.trainer, self.device)

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        if (batch_idx + 1) % self.trainer.log_every_n_steps == 0:
            self.guard.check(self.trainer)

    @property
    def skipped_steps(self) -> int:
        """Training batches skipped so far in the run for a non-finite loss (reads a device counter)."""
        return self.guard.state()["skipped_steps"]

    @property
    def bad_steps(self) -> int:
        """The bad batches in a row at the end of the last batch (reads a device counter)."""
        return self.guard.state()["bad_steps"]

    def on_train_epoch_start(self) -> None:
        """This epoch's learning rates, set from the milestones (EpochMultiStepLR.set_epoch): also right after
        resuming from any checkpoint, and for the discriminator, whose optimizer first steps in the GAN stage."""
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.set_epoch(self.current_epoch)

    def on_train_epoch_end(self) -> None:
        self.guard.check(self.trainer)
        self.log("train/skipped_steps", self.guard.skipped.float(), on_epoch=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint.update(self.guard.state())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.guard.load_state(checkpoint)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> dict[str, Tensor]:
        """Logs test/psnr, ... and returns {"sr", "bicubic"} [B, 1, H, W] for callbacks (the per-image table)."""
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
        """Adam (or the configured optimizers) for G and D, each with a step decay per epoch: the learning rate
        is multiplied by lr_gamma at every epoch in lr_milestones (EpochMultiStepLR, set at each epoch's start).
        The schedules' names are the keys LearningRateMonitor logs (`lr/generator`, `lr/discriminator`)."""
        optimizers = {"generator": self.optimizer_g(self.generator.parameters())}
        if self.discriminator is not None:
            optimizers["discriminator"] = self.optimizer_d(self.discriminator.parameters())
        return [{"optimizer": optimizer,
                 "lr_scheduler": {"scheduler": self.optimization.scheduler(optimizer), "name": f"lr/{net}"}}
                for net, optimizer in optimizers.items()]


def _ema_generator_weights(path: str) -> dict[str, Tensor]:
    """The EMA generator's state dict from a MediVision checkpoint (to start the GAN stage from SRResNet)."""
    return ema_generator_weights(load_checkpoint(path), f"model.init_from={path}")


def _loss_options(loss: Mapping[str, Mapping[str, Any]]) -> LossOptions:
    """model.loss ({"pixel": {...}, "perceptual": {...}, "adversarial": {...}}) as typed, checked options."""
    terms = {"pixel": PixelOptions, "perceptual": PerceptualOptions, "adversarial": AdversarialOptions}
    return LossOptions(**{name: _configured(f"model.loss.{name}.", options, **loss[name])
                          for name, options in terms.items()})


def _configured(key: str, factory: Callable[..., T], *args, **kwargs) -> T:
    """factory(*args, **kwargs). Components name a bad argument as "name=value ..."; the error is raised again
    with the config key the arguments came from in front (e.g. "model.loss.pixel."), which only this module,
    the boundary Hydra builds from `model`, knows."""
    try:
        return factory(*args, **kwargs)
    except (ValueError, FileNotFoundError) as error:
        raise type(error)(f"{key}{error}") from None
