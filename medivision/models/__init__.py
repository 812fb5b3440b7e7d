"""Networks: the SRResNet generator (with optional attention) and the VGG-style discriminator."""

from medivision.models.discriminator import Discriminator
from medivision.models.generator import SRResNet

__all__ = ["Discriminator", "SRResNet"]
