"""Training losses: pixel, VGG19 perceptual and adversarial.

All image inputs are [B, 1, H, W] in [0, 1]; every loss returns a scalar tensor.
"""

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import VGG19_Weights
from torchvision.models.vgg import cfgs, make_layers

T = TypeVar("T")

# The pixel distances `kind`/`criterion` name: (a, b) of the same shape -> their mean distance, a scalar.
DISTANCES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"l1": F.l1_loss, "mse": F.mse_loss}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_warned_random_vgg = False


def _check_weight(weight: float) -> float:
    if weight < 0:
        raise ValueError(f"weight={weight} must be >= 0")
    return weight


def _choose(name: str, value: str, table: dict[str, T]) -> T:
    """table[value]: the one check of a kind named in the config, naming the kinds there are."""
    if value not in table:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(table)}")
    return table[value]


class PixelLoss(nn.Module):
    """weight * distance(SR, HR): mean absolute (l1) or squared (mse) error."""

    def __init__(self, kind: str = "l1", weight: float = 1.0):
        super().__init__()
        self.kind, self.weight = kind, _check_weight(weight)
        self.distance = _choose("kind", kind, DISTANCES)

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        return self.weight * self.distance(sr, hr)


def vgg19_layer_index(layer: str) -> int:
    """Index in VGG19's `features` of a conv layer named like 'conv5_4' (its output, before the ReLU)."""
    index, block, conv = 0, 1, 0
    for entry in cfgs["E"]:  # VGG19: widths, "M" for max pooling; each conv is followed by a ReLU
        if entry == "M":
            index, block, conv = index + 1, block + 1, 0
            continue
        conv += 1
        if f"conv{block}_{conv}" == layer:
            return index
        index += 2
    raise ValueError(f"layer={layer!r} is not a VGG19 conv layer (conv1_1 ... conv5_4)")


def load_vgg19_features(weights: str, upto: int) -> nn.Sequential:
    """VGG19 `features[: upto + 1]`, frozen and in eval mode.

    weights: 'imagenet' (torchvision IMAGENET1K_V1 from the torch hub cache, downloaded if absent),
    a path to a VGG19 state dict (full model or `features` only), or 'random' (tests and offline demos only).
    """
    global _warned_random_vgg
    features = make_layers(cfgs["E"])
    if weights == "imagenet":
        features.load_state_dict(_features_only(_imagenet_state_dict()))
    elif weights == "random":
        if not _warned_random_vgg:
            warnings.warn(
                "VGG19 perceptual loss uses RANDOM weights (weights=random): "
                "fine for tests and offline demos, not for research results.",
                stacklevel=2,
            )
            _warned_random_vgg = True
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"weights={weights!r}: no such file. Use 'imagenet', 'random' "
                "or the path of a VGG19 state dict."
            )
        state = _features_only(torch.load(path, map_location="cpu", weights_only=True))
        missing = [key for key in features.state_dict() if key not in state]
        if missing:
            raise ValueError(f"{path} is not a VGG19 state dict: it lacks features.{missing[0]} and others")
        features.load_state_dict(state)
    features = features[: upto + 1].eval()
    features.requires_grad_(False)
    return features


def _features_only(state: dict) -> dict:
    """The `features.*` entries of a full VGG19 state dict without their prefix; others pass unchanged."""
    if not any(key.startswith("features.") for key in state):
        return state
    return {key.removeprefix("features."): value for key, value in state.items() if key.startswith("features.")}


def _imagenet_state_dict() -> dict:
    url = VGG19_Weights.IMAGENET1K_V1.url
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    try:
        return torch.hub.load_state_dict_from_url(url, progress=False, map_location="cpu", weights_only=True)
    except Exception as error:  # offline: URLError, socket errors, HTTP errors
        raise FileNotFoundError(
            f"VGG19 ImageNet weights are not in the torch hub cache ({target}) and could not be downloaded "
            f"({type(error).__name__}). Copy vgg19-dcbb9e9d.pth from {url} to {target}, or set the perceptual "
            "loss's weights=/path/to/vgg19.pth (or =random for tests only)."
        ) from error


class PerceptualLoss(nn.Module):
    """weight * distance between VGG19 features of SR and HR (Johnson et al. 2016; SRGAN's VGG loss).

    The single channel is repeated to RGB and ImageNet-normalised. The VGG is deliberately not a registered
    submodule: it is frozen, never in an optimizer, never in a checkpoint, and follows the input's device.
    """

    def __init__(self, layer: str = "conv5_4", weights: str = "imagenet", criterion: str = "l1", weight: float = 1.0):
        super().__init__()
        self.criterion, self.distance = criterion, _choose("criterion", criterion, DISTANCES)
        self.weight = _check_weight(weight)
        self.__dict__["vgg"] = load_vgg19_features(weights, vgg19_layer_index(layer))
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


class AdversarialLoss(nn.Module):
    """The GAN objective named `kind` (vanilla: binary cross-entropy; lsgan: least squares; hinge; relativistic:
    relativistic average) on discriminator logits [B]; the generator's term is multiplied by `weight`."""

    def __init__(self, kind: str = "vanilla", weight: float = 1.0):
        super().__init__()
        self.kind, self.weight = kind, _check_weight(weight)
        self.objective = _choose("kind", kind, ADVERSARIAL)

    def discriminator(self, real: Tensor, fake: Tensor) -> Tensor:
        """Loss that trains D to score `real` above `fake`."""
        return self.objective.discriminator(real, fake)

    def generator(self, fake: Tensor, real: Tensor | None) -> Tensor:
        """weight * the loss that trains G to make `fake` score as real (`real`: see GanObjective)."""
        return self.weight * self.objective.generator(fake, real)


class GeneratorLoss(nn.Module):
    """The generator's loss recipe: weighted pixel + perceptual + adversarial terms and their sum.

    perceptual is None when its weight is 0 (or in an SRResNet run); the adversarial term is computed only with a
    discriminator (none is built when its weight is 0); a term is left out in
    pixel-only pretraining (`gan_stage` False). Images [B, 1, H, W] in [0, 1]; every term a scalar tensor.
    """

    def __init__(self, pixel: PixelLoss, perceptual: PerceptualLoss | None, adversarial: AdversarialLoss | None):
        super().__init__()
        self.pixel, self.perceptual, self.adversarial = pixel, perceptual, adversarial

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
