"""Networks: the SRResNet generator (with optional attention) and the VGG-style discriminator."""

from medivision.nets.discriminator import Discriminator
from medivision.nets.generator import ClampedGenerator, SRResNet

__all__ = ["ClampedGenerator", "Discriminator", "SRResNet"]
