"""Training throughput: SRModule.training_step driven by a real Lightning Trainer against a plain PyTorch loop.

Both sides get the same networks, losses, optimizers and EMA (each its own copy, built from the same model
config) and run the same training step, SRModule.train_batch: Lightning with toggled_optimizer and
manual_backward, the plain loop with requires_grad, backward and step of its own. They get the same kind of
batches from the same data split, and run on the same device at the same precision. They take turns in one
process, `rounds` times, the order swapped every round so that drift (thermal, other load) hits both alike;
each turn runs `warmup` untimed batches and then `steps` timed ones.

What the Lightning side includes in its timed batches: fetching from the datamodule's loader, the batch
transfer and `on_after_batch_transfer` (augmentation, degradation), `training_step` with
`toggled_optimizer`, `manual_backward` and the EMA update, `self.log` of every loss, the loggers and the
progress bar as configured. What it leaves out: starting `fit` (reported separately as `fit_seconds`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import lightning as L
import torch
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
SIDES = ("lightning", "plain")


@dataclass(frozen=True)
class TrainingSettings:
    """benchmark.training: untimed batches per turn, timed batches per turn, turns per side (all >= 1)."""

    warmup: int
    steps: int
    rounds: int


@dataclass(frozen=True)
class TrainingSetup:
    """What the training benchmark runs, built by the command from its config.

    model: a new SRModule of the `model` config each call (keyword arguments override it); trainer: a new Trainer
    of the `trainer` config with the configured loggers (keyword arguments override it); datamodule feeds the
    Trainer and plain_data, a second instance of the same config, the plain loop; precision: trainer.precision.
    """

    model: Callable[..., SRModule]
    trainer: Callable[..., L.Trainer]
    datamodule: SRDataModule
    plain_data: SRDataModule
    precision: str


def measure_training(setup: TrainingSetup, settings: TrainingSettings, device: torch.device) -> dict:
    """Images per second of both sides in each round, their medians and the ratio Lightning / plain."""
    _check(setup, settings, device)
    module = setup.model()
    plain = PlainLoop(setup.model(), device, PRECISIONS[setup.precision])
    if not module.gan_stage:
        raise ValueError("the training benchmark times the GAN stage: set model.pretrain_epochs=0 and model.gan=true")
    results = {key: [] for key in (*SIDES, "fit_seconds", "plain_loop_seconds", "lightning_others_cpu",
                                   "plain_others_cpu")}
    for number in range(settings.rounds):
        for side in SIDES if number % 2 == 0 else SIDES[::-1]:
            if side == "lightning":
                speed, seconds, others = _lightning_turn(setup, module, settings.warmup, settings.steps)
                results["fit_seconds"].append(seconds)
            else:
                with contextlib.closing(_plain_batches(setup.plain_data, device)) as batches:
                    speed, seconds, others = plain.turn(batches, settings.warmup, settings.steps)
                results["plain_loop_seconds"].append(seconds)
            results[side].append(speed)
            results[f"{side}_others_cpu"].append(others)
    return _report(setup, settings, module, results)


def _check(setup: TrainingSetup, settings: TrainingSettings, device: torch.device) -> None:
    """Fail before building anything, naming the key that is wrong."""
    if setup.precision not in PRECISIONS:
        raise ValueError(f"trainer.precision={setup.precision} is not one the training benchmark can mirror in plain "
                         f"PyTorch: {', '.join(PRECISIONS)}")
    available = len(_train_loader(setup.plain_data, device))
    if available <= settings.warmup:
        raise ValueError(f"the training split has {available} batches, not more than "
                         f"benchmark.training.warmup={settings.warmup}: lower it, or use more data")


def _report(setup: TrainingSetup, settings: TrainingSettings, module: SRModule, results: dict) -> dict:
    lightning, plain_speed = median(results["lightning"]), median(results["plain"])
    flops = step_flops(setup.model(compile=False, channels_last=False), setup.datamodule)
    datamodule, options = setup.datamodule, module.loss_options
    return {
        "stage": "gan",
        "batch_size": datamodule.loading.batch_size,
        "generator": dict(module.hparams.generator),
        "adversarial": options.adversarial.kind,
        "perceptual_layer": options.perceptual.layer if module.losses.perceptual is not None else None,
        "precision": setup.precision,
        "channels_last": bool(module.hparams.channels_last),
        "compile": bool(module.hparams.compile),
        "on_device": bool(datamodule.loading.on_device),
        "num_workers": datamodule.loading.num_workers,
        "warmup_batches": settings.warmup,
        "timed_batches": settings.steps,
        "rounds": settings.rounds,
        "lightning_images_per_s": lightning,
        "plain_images_per_s": plain_speed,
        "ratio": lightning / plain_speed,
        "gflop_per_image": flops / 1e9,
        "lightning_tflop_per_s": lightning * flops / 1e12,
        "per_round": results,
    }


def step_flops(eager: SRModule, datamodule: SRDataModule) -> float:
    """FLOPs of one GAN training step per image (forward and backward of G, D and VGG; 2 per multiply-add),
    counted by PyTorch's FlopCounterMode on a single image with `eager`, a fresh copy of the model built without
    compile and channels_last, on the CPU."""
    plain = PlainLoop(eager, torch.device("cpu"), None)
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


def _lightning_turn(setup: TrainingSetup, module: SRModule, warmup: int,
                    steps: int) -> tuple[float, float, float | None]:
    """One fit of warmup + steps batches: images/s over the timed batches, seconds of the whole fit, and the
    cores' worth of CPU other processes used during the timed batches."""
    clock = StepClock(warmup)
    trainer = setup.trainer(
        callbacks=[clock], max_epochs=1, limit_train_batches=warmup + steps, limit_val_batches=0,
        num_sanity_val_steps=0, enable_checkpointing=False, enable_model_summary=False,
    )
    start = now(module.device)
    trainer.fit(module, datamodule=setup.datamodule)
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
    """SRModule.train_batch (the GAN step Lightning runs) driven by plain PyTorch: its own optimizers, backward,
    gradient clipping and EMA update, no Trainer.

    parts: an SRModule used only as the container of its networks, losses, EMA, optimizer factories and
    training step; its Lightning machinery is never called.
    """

    def __init__(self, parts: SRModule, device: torch.device, autocast_dtype: torch.dtype | None):
        parts.to(device)
        self.parts = parts
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.optimizer_g = parts.optimizer_g(parts.generator.parameters())
        self.optimizer_d = parts.optimizer_d(parts.discriminator.parameters()) if parts.discriminator else None
        self.optimizers = [opt for opt in (self.optimizer_g, self.optimizer_d) if opt is not None]
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
        """One batch: LR [B, 1, h, w] and HR [B, 1, 4h, 4w] in [0, 1], on the device."""
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype
                    else contextlib.nullcontext())
        with autocast:
            self.parts.train_batch(lr, hr, self.optimizer_g, self.optimizer_d, self._toggled, self._update)
        self.steps += len(self.optimizers)
        self.parts.ema.update(self.parts.generator, self.steps)

    @contextlib.contextmanager
    def _toggled(self, optimizer: torch.optim.Optimizer) -> Iterator[None]:
        """As Lightning's toggled_optimizer: the other optimizer's parameters take no gradients meanwhile."""
        others = [p for opt in self.optimizers if opt is not optimizer for group in opt.param_groups
                  for p in group["params"]]
        for parameter in others:
            parameter.requires_grad_(False)
        try:
            yield
        finally:
            for parameter in others:
                parameter.requires_grad_(True)

    def _update(self, optimizer: torch.optim.Optimizer, loss: Tensor, *earlier: Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.parts.optimization.gradient_clip
        if clip > 0:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
