"""Loading checkpoints as data: tensors and plain containers only, never arbitrary pickled code."""

import json
import warnings
from pathlib import Path
from typing import NamedTuple

import torch

from medivision.inference.model_file import UNRECORDED_INTENSITY, provenance, read_model_file
from medivision.nets import SRResNet

EMA_PREFIX = "ema.module."


def load_checkpoint(path: str | Path) -> dict:
    """A Lightning checkpoint as a dict, loaded with `weights_only=True` onto the CPU.

    Raises FileNotFoundError for a missing file and ValueError, naming the file, for a truncated file,
    a non-checkpoint, or one that would need code to unpickle.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: pass a .ckpt file that medivision.train wrote")
    try:
        with warnings.catch_warnings():
            # a bare pickle (not torch.save's zip) is either refused below, with the reason, or plain data
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # garbage bytes fail in the zip reader, the unpickler or torch, with any type
        raise ValueError(
            f"{path} cannot be loaded as a checkpoint (truncated, not a checkpoint, or it contains code "
            f"objects, which are refused): {_reason(error)}"
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a MediVision/Lightning checkpoint: it has no 'state_dict'")
    return checkpoint


def _reason(error: Exception) -> str:
    """The telling line of a load error: for a refused pickle, what the data-only unpickler refused (the
    global or the instruction; torch's first line only says how to load the file anyway)."""
    text = str(error)
    _, found, refused = text.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (refused if found else text).splitlines() if line.strip()]
    # torch's advice around the refusal (load it with weights_only=False) is what must not be done with this file
    lines = [line for line in lines if not line.startswith(("Weights only load failed", "Check the documentation"))]
    return lines[0] if lines else type(error).__name__


def ema_generator_weights(checkpoint: dict, path: str | Path) -> dict[str, torch.Tensor]:
    """The EMA generator's state dict (keys without the 'ema.module.' prefix) of a loaded checkpoint."""
    state = checkpoint["state_dict"]
    weights = {key[len(EMA_PREFIX):]: value for key, value in state.items() if key.startswith(EMA_PREFIX)}
    if not weights:
        raise ValueError(f"{path} holds no EMA generator weights (keys 'ema.module.*'): not a MediVision checkpoint")
    return weights


def generator_config(checkpoint: dict, path: str | Path) -> dict:
    """The SRResNet keyword arguments a checkpoint was trained with (hyper_parameters["generator"])."""
    config = (checkpoint.get("hyper_parameters") or {}).get("generator")
    if not isinstance(config, dict):
        raise ValueError(
            f"{path} has no hyper_parameters['generator']: it was not saved by medivision.training.module.SRModule"
        )
    return dict(config)


class TrainedGenerator(NamedTuple):
    network: SRResNet  # the EMA generator, in eval mode on the CPU, gradients off
    config: dict  # its SRResNet keyword arguments
    intensity: str  # how its inputs were mapped to [0, 1] in training (medivision.io.intensity)
    provenance: dict  # how it was made: {"command", "commit", "data"} (medivision.training.provenance); {} if unknown


def load_generator(path: str | Path) -> TrainedGenerator:
    """The EMA generator of a MediVision checkpoint, or the generator of a MediVision model file (.safetensors,
    medivision.inference.model_file), with its SRResNet config, intensity policy and provenance.

    The network is built from the file's own config, so models of any size load. Raises ValueError naming
    the file when the weights do not fit that config (a file edited or saved by another model), besides the
    errors of load_checkpoint and read_model_file.
    """
    if Path(path).suffix.lower() == ".safetensors":
        weights, metadata = read_model_file(path)
        config = json.loads(metadata["generator"])
        network = build_generator(config, {key: torch.from_numpy(value) for key, value in weights.items()}, path)
        return TrainedGenerator(network, config, metadata.get("intensity", UNRECORDED_INTENSITY), provenance(metadata))
    checkpoint = load_checkpoint(path)
    config = generator_config(checkpoint, path)
    generator = build_generator(config, ema_generator_weights(checkpoint, path), path)
    intensity = str((checkpoint.get("hyper_parameters") or {}).get("intensity", UNRECORDED_INTENSITY))
    made = checkpoint.get("provenance")
    return TrainedGenerator(generator, config, intensity, made if isinstance(made, dict) else {})


def build_generator(config: dict, weights: dict[str, torch.Tensor], path: str | Path) -> SRResNet:
    """An SRResNet built from `config` holding `weights`, in eval mode with gradients off. Raises ValueError
    naming the file (`path`) when the config cannot build one or the weights do not fit it."""
    try:
        generator = SRResNet(**config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: its generator config {config} cannot build an SRResNet: {error}") from error
    expected = generator.state_dict()
    missing = sorted(expected.keys() - weights.keys())
    unexpected = sorted(weights.keys() - expected.keys())
    reshaped = [f"{key} {tuple(weights[key].shape)} vs {tuple(value.shape)}"
                for key, value in expected.items() if key in weights and weights[key].shape != value.shape]
    if missing or unexpected or reshaped:
        problems = [f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
                    for label, items in (("missing", missing), ("unexpected", unexpected),
                                         ("shape file vs config", reshaped)) if items]
        raise ValueError(
            f"{path}: the EMA generator weights do not fit the generator config saved with them "
            f"({_describe(config)}); {'; '.join(problems)}. Use a file written by medivision.train or "
            f"medivision.export."
        )
    generator.load_state_dict(weights)
    return generator.eval().requires_grad_(False)


def _describe(config: dict) -> str:
    return ", ".join(f"{key}={config[key]}" for key in ("channels", "blocks", "scale", "attention") if key in config)
