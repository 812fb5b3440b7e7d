"""MediVision model files: a generator's weights and how it was made, in one safetensors file.

safetensors holds tensors and a flat string -> string metadata map, and loading one runs no code. The
metadata of a MediVision model file (all values strings; JSON where structured):
  format       FORMAT, which marks the file as MediVision's
  generator    the SRResNet keyword arguments (JSON)
  scale        the upscaling factor
  intensity    the policy its inputs were mapped to [0, 1] with (medivision.io.intensity)
  degradation  how its training LR was made: {"kind", "options"} (JSON, from the training data config)
  command      the training command; commit: the code's git commit at training; data: the data config (JSON)
  checkpoint   the checkpoint it was exported from; note: that its outputs are estimates
The package ships one such file, the general model (BUNDLED_MODEL), with its model card beside it.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from medivision.inference.checkpoints import TrainedGenerator, build_generator

FORMAT = "medivision-sr-1"
BUNDLED_MODEL = "general.safetensors"
NOTE = "outputs are model estimates, not measurements; input and output in [0, 1]"


def bundled_model_path() -> Path:
    """The general model shipped inside the package (medivision/weights/), with MODEL_CARD.md beside it."""
    path = Path(str(resources.files("medivision"))) / "weights" / BUNDLED_MODEL
    if not path.is_file():
        raise FileNotFoundError(f"the bundled model {path} is missing from this installation: reinstall medivision, "
                                "or pass ckpt=PATH")
    return path


def write_model_file(trained: TrainedGenerator, output: Path, source: str) -> dict[str, str]:
    """Write a trained generator (weights float32) and its metadata (see the module docstring) to `output`;
    `source` names the checkpoint it came from. Returns the metadata written."""
    data = trained.provenance.get("data", {})
    metadata = {
        "format": FORMAT,
        "generator": json.dumps(trained.config),
        "scale": str(trained.config["scale"]),
        "intensity": trained.intensity,
        "degradation": json.dumps({"kind": data.get("degradation", "unknown"),
                                   "options": data.get("degradation_options", {})}),
        "command": trained.provenance.get("command", "unknown"),
        "commit": trained.provenance.get("commit", "unknown"),
        "data": json.dumps(data),
        "checkpoint": source,
        "note": NOTE,
    }
    weights = {key: value.detach().float().contiguous() for key, value in trained.network.state_dict().items()}
    save_file(weights, str(output), metadata=metadata)
    return metadata


def read_model_file(path: str | Path) -> tuple[TrainedGenerator, dict[str, str]]:
    """The generator of a MediVision model file and the file's metadata. Raises ValueError naming the file for
    a file that is not safetensors, or one without MediVision's metadata (a safetensors file of another model)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            weights = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # safetensors raises SafetensorError and OSError subtypes for bad headers and sizes
        raise ValueError(f"{path} cannot be read as a safetensors file ({str(error).splitlines()[0]}): write one "
                         "with python -m medivision.export ckpt=... format=safetensors") from error
    if metadata.get("format") != FORMAT or "generator" not in metadata:
        raise ValueError(f"{path} is a safetensors file without MediVision metadata (format={FORMAT}, generator "
                         "config): it holds some other model; write one with python -m medivision.export "
                         "ckpt=... format=safetensors")
    config = json.loads(metadata["generator"])
    generator = build_generator(config, weights, path)
    provenance = {"command": metadata.get("command", "unknown"), "commit": metadata.get("commit", "unknown"),
                  "data": json.loads(metadata.get("data", "{}"))}
    return TrainedGenerator(generator, config, metadata.get("intensity", "minmax"), provenance), metadata


def short_commit(commit: str) -> str:
    """A commit as people quote it: its first 7 hex digits, "+dirty" kept."""
    sha, _, dirty = commit.partition("+")
    return sha[:7] + (f"+{dirty}" if dirty else "")

