"""Training throughput: SRModule.training_step driven by a real Lightning Trainer against a plain PyTorch loop.

Both sides get the same networks, losses, optimizers and EMA (each its own copy, built from the same model
config), the same kind of batches from the same data split, and run on the same device at the same
precision. They take turns in one process, `rounds` times, the order swapped every round so that drift
(thermal, other load) hits both alike; each turn runs `warmup` untimed batches and then `steps` timed ones.

What the Lightning side includes in its timed batches: fetching from the datamodule's loader, the batch
transfer and `on_after_batch_transfer` (augmentation, degradation), `training_step` with
`toggled_optimizer`, `manual_backward` and the EMA update, `self.log` of every loss, the loggers and the
progress bar as configured. What it leaves out: starting `fit` (reported separately as `fit_seconds`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from medivision.benchmarks.clock import CpuUse, median, now
from medivision.data.datamodule import SRDataModule
from medivision.data.dataset import unit_range
from medivision.data.degradations import degrade
from medivision.data.device_batches import DeviceBatches
from medivision.training.module import SRModule

PRECISIONS = {"32-true": None, "32": None, "bf16-mixed": torch.bfloat16}


def measure_training(cfg: DictConfig, datamodule: SRDataModule, plain_data: SRDataModule, device: torch.device,
                     warmup: int, steps: int, rounds: int) -> dict:
    """Images per second of both sides in each round, their medians and the ratio Lightning / plain.

    datamodule feeds the Trainer; plain_data, a second instance of the same config, feeds the plain loop.
    """
    precision = str(cfg.trainer.precision)
    if precision not in PRECISIONS:
        raise ValueError(f"trainer.precision={precision} is not one the training benchmark can mirror in plain "
                         f"PyTorch: {', '.join(PRECISIONS)}")
    available = len(_train_loader(plain_data, device))
    if available <= warmup:
        raise ValueError(f"the training split has {available} batches, not more than "
                         f"benchmark.training.warmup={warmup}: lower it, or use more data")
    module: SRModule = instantiate(cfg.model)
    plain = PlainLoop(instantiate(cfg.model), device, PRECISIONS[precision])
    if not module.gan_stage:
        raise ValueError("the training benchmark times the GAN stage: set model.pretrain_epochs=0 and model.gan=true")
    results = {key: [] for key in ("lightning", "plain", "fit_seconds", "plain_loop_seconds", "lightning_others_cpu",
                                   "plain_others_cpu")}
    for number in range(rounds):
        sides = ("lightning", "plain") if number % 2 == 0 else ("plain", "lightning")
        for side in sides:
            if side == "lightning":
                speed, seconds, others = _lightning_turn(cfg, module, datamodule, warmup, steps)
                results["fit_seconds"].append(seconds)
            else:
                with contextlib.closing(_plain_batches(plain_data, device)) as batches:
                    speed, seconds, others = plain.turn(batches, warmup, steps)
                results["plain_loop_seconds"].append(seconds)
            results[side].append(speed)
            results[f"{side}_others_cpu"].append(others)
    lightning, plain_speed = median(results["lightning"]), median(results["plain"])
    flops = step_flops(cfg, datamodule)
    return {
        "stage": "gan",
        "batch_size": datamodule.loading.batch_size,
        "generator": dict(cfg.model.generator),
        "adversarial": cfg.model.loss.adversarial.kind,
        "perceptual_layer": cfg.model.loss.perceptual.layer if module.losses.perceptual is not None else None,
        "precision": precision,
        "channels_last": bool(cfg.model.get("channels_last", False)),
        "compile": bool(cfg.model.get("compile", False)),
        "on_device": bool(cfg.data.get("on_device", False)),
        "num_workers": datamodule.loading.num_workers,
        "warmup_batches": warmup,
        "timed_batches": steps,
        "rounds": rounds,
        "lightning_images_per_s": lightning,
        "plain_images_per_s": plain_speed,
        "ratio": lightning / plain_speed,
        "gflop_per_image": flops / 1e9,
        "lightning_tflop_per_s": lightning * flops / 1e12,
        "per_round": results,
    }


def step_flops(cfg: DictConfig, datamodule: SRDataModule) -> float:
    """FLOPs of one GAN training step per image (forward and backward of G, D and VGG; 2 per multiply-add),
    counted by PyTorch's FlopCounterMode on a single image with a fresh eager copy of the model on the CPU."""
    plain = PlainLoop(instantiate(cfg.model, compile=False, channels_last=False), torch.device("cpu"), None)
    hr = unit_range(datamodule.train_set.hr[:1])
    counter = FlopCounterMode(display=False)
    with counter:
        plain.step(degrade(hr, datamodule.lowres.scale, datamodule.lowres.degradation, datamodule.lowres.options), hr)
    return float(counter.get_total_flops())


class StepClock(L.Callback):
    """Times a fit's training batches after the first `warmup`: from the end of batch warmup-1 to the end of
    the last (waiting for the device only at those two points)."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.start = self.seconds = 0.0
        self.images = 0
        self.cpu = self.others = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if batch_idx == self.warmup - 1:
            self.start, self.cpu = now(module.device), CpuUse.read()
        elif batch_idx >= self.warmup:
            self.images += batch["hr"].shape[0]
        if batch_idx == trainer.num_training_batches - 1:
            self.seconds = now(module.device) - self.start
            self.others = CpuUse.read().others_since(self.cpu)


def _lightning_turn(cfg: DictConfig, module: SRModule, datamodule: SRDataModule, warmup: int,
                    steps: int) -> tuple[float, float, float | None]:
    """One fit of warmup + steps batches: images/s over the timed batches, seconds of the whole fit, and the
    cores' worth of CPU other processes used during the timed batches."""
    clock = StepClock(warmup)
    loggers = [instantiate(logger) for logger in (cfg.get("logger") or {}).values()]
    trainer: L.Trainer = instantiate(
        cfg.trainer, logger=loggers or False, callbacks=[clock], max_epochs=1, limit_train_batches=warmup + steps,
        limit_val_batches=0, num_sanity_val_steps=0, enable_checkpointing=False, enable_model_summary=False,
    )
    start = now(module.device)
    trainer.fit(module, datamodule=datamodule)
    return clock.images / clock.seconds, now(module.device) - start, clock.others


def _plain_batches(datamodule: SRDataModule, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    """(lr, hr) training batches on `device`, made as SRDataModule makes them, from the same kind of loader."""
    for batch in _train_loader(datamodule, device):
        hr, lr = datamodule.training_pair(batch["hr"].to(device, non_blocking=True))
        yield lr, hr


def _train_loader(datamodule: SRDataModule, device: torch.device) -> DataLoader | DeviceBatches:
    """The training loader the datamodule gives a Trainer on `device`."""
    if datamodule.loading.on_device:
        return datamodule.device_batches(datamodule.train_set, True, device)
    return datamodule.train_dataloader()


class PlainLoop:
    """SRModule's GAN step written as a plain PyTorch loop, with the networks, losses and optimizers of `parts`.

    parts: an SRModule used only as the container of its generator, discriminator, losses, EMA and
    optimizer factories; its Lightning machinery is never called.
    """

    def __init__(self, parts: SRModule, device: torch.device, autocast_dtype: torch.dtype | None):
        parts.to(device)
        self.parts = parts
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.optimizer_g = parts.optimizer_g(parts.generator.parameters())
        self.optimizer_d = parts.optimizer_d(parts.discriminator.parameters()) if parts.discriminator else None
        self.steps = 0

    def turn(self, batches: Iterator[tuple[Tensor, Tensor]], warmup: int,
             steps: int) -> tuple[float, float, float | None]:
        """warmup + steps batches: images/s over the timed batches, seconds of the whole turn, and the cores'
        worth of CPU other processes used during the timed batches."""
        images = 0
        begin = start = now(self.device)
        cpu = CpuUse.read()
        for number, (lr, hr) in enumerate(batches):
            self.step(lr, hr)
            if number == warmup - 1:
                start, cpu = now(self.device), CpuUse.read()
            elif number >= warmup:
                images += hr.shape[0]
            if number == warmup + steps - 1:
                break
        end = now(self.device)
        return images / (end - start), end - begin, CpuUse.read().others_since(cpu)

    def step(self, lr: Tensor, hr: Tensor) -> None:
        parts = self.parts
        generator, discriminator = parts.generator, parts.discriminator
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype
                    else contextlib.nullcontext())
        with autocast:
            sr = generator(lr)
            if discriminator is not None:
                discriminator.requires_grad_(True)
                self._update(self.optimizer_d, parts.losses.discriminator_loss(discriminator, sr, hr))
                discriminator.requires_grad_(False)  # G's backward needs no gradients for D's weights
            self._update(self.optimizer_g, parts.losses(sr, hr, discriminator, gan_stage=True)["g_loss"])
        self.steps += 2 if discriminator is not None else 1
        parts.ema.update(generator, self.steps)

    def _update(self, optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.parts.hparams.gradient_clip > 0:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.parts.hparams.gradient_clip)
        optimizer.step()
