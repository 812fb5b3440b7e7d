"""When each training stage runs and how the learning rates decay, counted in epochs."""

from collections.abc import Sequence
from dataclasses import dataclass

from torch.optim import Optimizer
from torch.optim.lr_scheduler import MultiStepLR


@dataclass(frozen=True)
class Stages:
    """model.gan and model.pretrain_epochs: the generator learns from the pixel loss alone for the first
    `pretrain_epochs` epochs (always, when `gan` is false), then in the GAN stage."""

    gan: bool = True
    pretrain_epochs: int = 0

    def __post_init__(self):
        if self.pretrain_epochs < 0:
            raise ValueError(f"pretrain_epochs={self.pretrain_epochs} must be >= 0")

    def gan_stage(self, epoch: int) -> bool:
        """Whether epoch `epoch` (from 0) trains the GAN."""
        return self.gan and epoch >= self.pretrain_epochs


@dataclass(frozen=True)
class Optimization:
    """model.lr_milestones, model.lr_gamma and model.gradient_clip: each learning rate is multiplied by `lr_gamma`
    at every epoch in `lr_milestones`; each optimizer's gradients are clipped to norm `gradient_clip` (<= 0: off)."""

    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.5
    gradient_clip: float = 0.0

    def scheduler(self, optimizer: Optimizer) -> "EpochMultiStepLR":
        """`optimizer`'s schedule, to be set to each epoch (EpochMultiStepLR.set_epoch)."""
        return EpochMultiStepLR(optimizer, self.lr_milestones, self.lr_gamma)


class EpochMultiStepLR(MultiStepLR):
    """MultiStepLR whose epoch is set rather than stepped: `set_epoch(n)` gives the learning rates that n calls
    of step() would, the same floats (the decays applied one milestone after another, from base_lrs).

    Stepping would have to wait for the optimizer: torch warns when a schedule steps before its optimizer ever
    did, which the discriminator's does through pixel pretraining, and the first GAN epoch must already run at
    the decayed rate. Setting is also what a resumed run needs: the epoch a checkpoint continues at, whatever
    the schedule's state was when it was written.
    """

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float):
        super().__init__(optimizer, list(milestones), gamma)

    def set_epoch(self, epoch: int) -> None:
        """The learning rates of epoch `epoch` (from 0) in every param group; last_epoch becomes `epoch`."""
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            lr = base
            for milestone in sorted(self.milestones):
                if milestone <= epoch:
                    lr = lr * self.gamma ** self.milestones[milestone]
            group["lr"] = lr
        self.last_epoch = epoch
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
