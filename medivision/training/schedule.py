"""When each training stage runs and how the learning rates decay, counted in epochs."""

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

    def scheduler(self, optimizer: Optimizer) -> MultiStepLR:
        """`optimizer`'s schedule, stepped once per epoch."""
        return MultiStepLR(optimizer, list(self.lr_milestones), self.lr_gamma)
