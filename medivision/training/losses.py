"""Training losses: pixel, VGG19 perceptual and adversarial.

All image inputs are [B, 1, H, W] in [0, 1]; every loss returns a scalar tensor.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medivision.training.vgg import load_vgg19_features, vgg19_layer_index

# The pixel distances `kind`/`criterion` name: (a, b) of the same shape -> their mean distance, a scalar.
DISTANCES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"l1": F.l1_loss, "mse": F.mse_loss}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_weight(weight: float) -> None:
    if weight < 0:
        raise ValueError(f"weight={weight} must be >= 0")


def _check_kind(name: str, value: str, table: dict) -> None:
    """The one check of a kind named in the config: a key of `table`, or an error naming the kinds there are."""
    if value not in table:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(table)}")


@dataclass(frozen=True)
class _KindAndWeight:
    """A loss term's options: `kind`, a key of the class's KINDS table, and `weight` >= 0; checked here, once."""

    KINDS: ClassVar[dict] = {}
    kind: str = ""
    weight: float = 1.0

    def __post_init__(self):
        _check_kind("kind", self.kind, self.KINDS)
        _check_weight(self.weight)


@dataclass(frozen=True)
class PixelOptions(_KindAndWeight):
    """model.loss.pixel: `kind` l1 | mse (DISTANCES), `weight` >= 0."""

    KINDS: ClassVar[dict] = DISTANCES
    kind: str = "l1"


class PixelLoss(nn.Module):
    """weight * distance(SR, HR): mean absolute (l1) or squared (mse) error."""

    def __init__(self, options: PixelOptions = PixelOptions()):
        super().__init__()
        self.kind, self.weight, self.distance = options.kind, options.weight, DISTANCES[options.kind]

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        return self.weight * self.distance(sr, hr)


@dataclass(frozen=True)
class PerceptualOptions:
    """model.loss.perceptual: VGG19 conv `layer` (its output before the ReLU), `weights` (load_vgg19_features),
    `criterion` l1 | mse (DISTANCES), `weight` >= 0. Kind and weight are checked here, the layer and the weights
    file only when the loss is built (a run that does not use the term does not need them)."""

    layer: str = "conv5_4"
    weights: str = "imagenet"
    criterion: str = "l1"
    weight: float = 1.0

    def __post_init__(self):
        _check_kind("criterion", self.criterion, DISTANCES)
        _check_weight(self.weight)


class PerceptualLoss(nn.Module):
    """weight * distance between VGG19 features of SR and HR (Johnson et al. 2016; SRGAN's VGG loss).

    The single channel is repeated to RGB and ImageNet-normalised. The VGG is deliberately not a registered
    submodule: it is frozen, never in an optimizer, never in a checkpoint, and follows the input's device.
    """

    def __init__(self, options: PerceptualOptions = PerceptualOptions()):
        super().__init__()
        self.criterion, self.weight, self.distance = options.criterion, options.weight, DISTANCES[options.criterion]
        self.__dict__["vgg"] = load_vgg19_features(options.weights, vgg19_layer_index(options.layer))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def network(self) -> nn.Sequential:
        """The frozen VGG19 feature layers (kept out of the registered submodules, see above)."""
        return self.__dict__["vgg"]

    def features(self, images: Tensor) -> Tensor:
        """[B, 1, H, W] in [0, 1] -> VGG features [B, C', H', W']."""
        vgg = self.__dict__["vgg"]
        if self.mean.device != next(vgg.parameters()).device:
            vgg.to(self.mean.device)
        return vgg((images.expand(-1, 3, -1, -1) - self.mean) / self.std)

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        with torch.no_grad():
            target = self.features(hr)
        return self.weight * self.distance(self.features(sr), target)


def _bce(logits: Tensor, is_real: bool) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 1.0 if is_real else 0.0))


def _squared(logits: Tensor, is_real: bool) -> Tensor:
    return F.mse_loss(logits, torch.full_like(logits, 1.0 if is_real else 0.0))


def _vanilla_d(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * (_bce(real, True) + _bce(fake, False))


def _vanilla_g(fake: Tensor, real: Tensor | None) -> Tensor:
    return _bce(fake, True)


def _lsgan_d(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * (_squared(real, True) + _squared(fake, False))


def _lsgan_g(fake: Tensor, real: Tensor | None) -> Tensor:
    return _squared(fake, True)


def _hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def _hinge_g(fake: Tensor, real: Tensor | None) -> Tensor:
    return -fake.mean()


def _relativistic_d(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * (_bce(real - fake.mean(), True) + _bce(fake - real.mean(), False))


def _relativistic_g(fake: Tensor, real: Tensor | None) -> Tensor:
    real = real.detach()
    return 0.5 * (_bce(real - fake.mean(), False) + _bce(fake - real.mean(), True))


@dataclass(frozen=True)
class GanObjective:
    """One adversarial loss on discriminator logits [B] (any real values); each function returns a scalar.

    discriminator(real, fake): the loss that trains D to score `real` above `fake`.
    generator(fake, real): the loss that trains G to make `fake` score as real; `real` is None unless
    `uses_real` (then the logits of the batch's real images, which the loss does not train D with).
    """

    discriminator: Callable[[Tensor, Tensor], Tensor]
    generator: Callable[[Tensor, Tensor | None], Tensor]
    uses_real: bool = False


# The adversarial losses `model.loss.adversarial.kind` names (functions, not lambdas: ddp_spawn pickles the module);
# a new one is its two functions and one entry here, and its name in the config.
ADVERSARIAL: dict[str, GanObjective] = {
    "vanilla": GanObjective(_vanilla_d, _vanilla_g),
    "lsgan": GanObjective(_lsgan_d, _lsgan_g),
    "hinge": GanObjective(_hinge_d, _hinge_g),
    # relativistic average (ESRGAN): each side scored against the mean of the other
    "relativistic": GanObjective(_relativistic_d, _relativistic_g, uses_real=True),
}


@dataclass(frozen=True)
class AdversarialOptions(_KindAndWeight):
    """model.loss.adversarial: `kind` (ADVERSARIAL), `weight` >= 0 (0: no discriminator)."""

    KINDS: ClassVar[dict] = ADVERSARIAL
    kind: str = "vanilla"


class AdversarialLoss(nn.Module):
    """The GAN objective named `kind` (vanilla: binary cross-entropy; lsgan: least squares; hinge; relativistic:
    relativistic average) on discriminator logits [B]; the generator's term is multiplied by `weight`."""

    def __init__(self, options: AdversarialOptions = AdversarialOptions()):
        super().__init__()
        self.kind, self.weight, self.objective = options.kind, options.weight, ADVERSARIAL[options.kind]

    def discriminator(self, real: Tensor, fake: Tensor) -> Tensor:
        """Loss that trains D to score `real` above `fake`."""
        return self.objective.discriminator(real, fake)

    def generator(self, fake: Tensor, real: Tensor | None) -> Tensor:
        """weight * the loss that trains G to make `fake` score as real (`real`: see GanObjective)."""
        return self.weight * self.objective.generator(fake, real)


@dataclass(frozen=True)
class LossOptions:
    """model.loss: the options of the three terms."""

    pixel: PixelOptions = PixelOptions()
    perceptual: PerceptualOptions = PerceptualOptions()
    adversarial: AdversarialOptions = AdversarialOptions()


class GeneratorLoss(nn.Module):
    """The generator's loss recipe: weighted pixel + perceptual + adversarial terms and their sum.

    perceptual is None when its weight is 0 (or in an SRResNet run, `gan` false); the adversarial term is computed
    only with a discriminator (none is built when its weight is 0); a term is left out in
    pixel-only pretraining (`gan_stage` False). Images [B, 1, H, W] in [0, 1]; every term a scalar tensor.
    """

    def __init__(self, options: LossOptions, gan: bool):
        super().__init__()
        self.pixel = PixelLoss(options.pixel)
        uses_perceptual = gan and options.perceptual.weight > 0
        # VGG19 is loaded only when the term is used
        self.perceptual = PerceptualLoss(options.perceptual) if uses_perceptual else None
        self.adversarial = AdversarialLoss(options.adversarial)

    def forward(self, sr: Tensor, hr: Tensor, discriminator: nn.Module | None, gan_stage: bool) -> dict[str, Tensor]:
        """{"pixel", "perceptual", "adversarial" (those that apply), "g_loss": their sum}."""
        losses = {"pixel": self.pixel(sr, hr)}
        if gan_stage and self.perceptual is not None:
            losses["perceptual"] = self.perceptual(sr, hr)
        if gan_stage and self.adversarial is not None and discriminator is not None:
            real = discriminator(hr).detach() if self.adversarial.objective.uses_real else None
            losses["adversarial"] = self.adversarial.generator(discriminator(sr), real)
        losses["g_loss"] = sum(losses.values())
        return losses

    def discriminator_loss(self, discriminator: nn.Module, sr: Tensor, hr: Tensor) -> Tensor:
        """The discriminator's loss on real HR and the generator's detached SR."""
        return self.adversarial.discriminator(discriminator(hr), discriminator(sr.detach()))
