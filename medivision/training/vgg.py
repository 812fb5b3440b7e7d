"""VGG19 feature layers for the perceptual loss: layer names, and weights from ImageNet, a file or at random."""

import logging
from pathlib import Path

import torch
from torch import nn
from torchvision.models import VGG19_Weights
from torchvision.models.vgg import cfgs, make_layers

_warned_random_vgg = False
logger = logging.getLogger(__name__)


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
            logger.warning("VGG19 perceptual loss uses RANDOM weights (weights=random): "
                           "fine for tests and offline demos, not for research results.")
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
