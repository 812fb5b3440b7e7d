"""MediVision model files: a generator's weights and how it was made, in one safetensors file (read with numpy:
no torch needed). Exported ONNX files carry the same metadata.

safetensors holds tensors and a flat string -> string metadata map, and loading one runs no code. The
metadata of a MediVision model file (all values strings; JSON where structured):
  format       FORMAT, which marks the file as MediVision's
  generator    the SRResNet keyword arguments (JSON)
  scale        the upscaling factor
  intensity    the policy its inputs were mapped to [0, 1] with (medivision.io.intensity)
  degradation  how its training LR was made: {"kind", "options"} (JSON, from the training data config)
  command      the training command; commit: the code's git commit at training; data: the data config (JSON)
  checkpoint   the checkpoint it was exported from; note: that its outputs are estimates
The package ships the general model (BUNDLED_MODEL) as such a file and as ONNX, with its model card beside them.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

FORMAT = "medivision-sr-1"
BUNDLED_MODEL = "general"  # medivision/weights/general.safetensors and general.onnx, the same network
BUNDLED_THICK_MODEL = "general_thick"  # the through-plane prior, likewise
# Models from before the policy was recorded read image files by their dtype's range (8 bits /255, 16 bits
# /65535); NIfTI volumes were divided by a percentile, which no policy reproduces.
UNRECORDED_INTENSITY = "dtype"
NOTE = "outputs are model estimates, not measurements; input and output in [0, 1]"
# The model files the tools read, by suffix: what each is, and its backend, "onnx" (ONNX Runtime, the core
# install) or "torch" (PyTorch, the [train] extra). medivision.export writes .onnx and .safetensors.
MODEL_FILES = {
    ".ckpt": ("a checkpoint (.ckpt, from medivision.train)", "torch"),
    ".onnx": ("an ONNX file (.onnx, from medivision.export)", "onnx"),
    ".safetensors": ("a safetensors model file (.safetensors, from medivision.export)", "torch"),
}


def bundled_model_path(suffix: str = ".onnx", name: str = BUNDLED_MODEL) -> Path:
    """A model shipped inside the package (medivision/weights/), as ONNX (what the core install runs) or
    .safetensors (the torch backend's), with its model card beside them."""
    path = Path(str(resources.files("medivision"))) / "weights" / (name + suffix)
    if not path.is_file():
        raise FileNotFoundError(f"the bundled model {path} is missing from this installation: reinstall medivision, "
                                "or pass ckpt=PATH")
    return path


def model_metadata(config: dict, intensity: str, provenance: dict, source: str) -> dict[str, str]:
    """The metadata of a MediVision model file (see the module docstring), as ONNX files carry it too: a generator's
    SRResNet `config`, its intensity policy, its provenance ({"command", "commit", "data"}) and `source`, the
    file it came from."""
    data = provenance.get("data", {})
    kind, options = degradation_of(data)
    return {
        "format": FORMAT,
        "generator": json.dumps(config),
        "scale": str(config["scale"]),
        "intensity": intensity,
        "degradation": json.dumps({"kind": kind, "options": options}),
        "command": provenance.get("command", "unknown"),
        "commit": provenance.get("commit", "unknown"),
        "data": json.dumps(data),
        "checkpoint": source,
        "note": NOTE,
    }


def write_model_file(weights: dict[str, np.ndarray], metadata: dict[str, str], output: Path) -> None:
    """Write a generator's weights (float32 arrays by state-dict key) and its metadata (model_metadata)."""
    save_file({key: np.ascontiguousarray(value, np.float32) for key, value in weights.items()}, str(output),
              metadata=metadata)


def read_model_file(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The weights (float32 arrays by state-dict key) and metadata of a MediVision model file. Raises ValueError
    naming the file for a file that is not safetensors, or one without MediVision's metadata (a safetensors
    file of another model)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            weights = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # safetensors raises SafetensorError and OSError subtypes for bad headers and sizes
        raise ValueError(f"{path} cannot be read as a safetensors file ({str(error).splitlines()[0]}): write one "
                         "with python -m medivision.export ckpt=... format=safetensors") from error
    if metadata.get("format") != FORMAT or "generator" not in metadata:
        raise ValueError(f"{path} is a safetensors file without MediVision metadata (format={FORMAT}, generator "
                         "config): it holds some other model; write one with python -m medivision.export "
                         "ckpt=... format=safetensors")
    return weights, metadata


def provenance(metadata: dict[str, str]) -> dict[str, Any]:
    """How a model was made, from its file's metadata: {"command", "commit", "data"}."""
    return {"command": metadata.get("command", "unknown"), "commit": metadata.get("commit", "unknown"),
            "data": json.loads(metadata.get("data", "{}"))}


def degradation(metadata: dict[str, str]) -> tuple[str, dict]:
    """The degradation a model was trained for, from its file's metadata: (kind, options)."""
    recorded = json.loads(metadata.get("degradation", "{}"))
    return degradation_of({"degradation": recorded.get("kind"), "degradation_options": recorded.get("options")})


def degradation_of(data: dict) -> tuple[str, dict]:
    """(kind, options) of a training data config's degradation (data.degradation, data.degradation_options);
    bicubic, the research default, where it does not say (or said "unknown", as older files do)."""
    kind = data.get("degradation") or "bicubic"
    return ("bicubic" if kind == "unknown" else kind), dict(data.get("degradation_options") or {})


def short_commit(commit: str) -> str:
    """A commit as people quote it: its first 7 hex digits, "+dirty" kept."""
    sha, _, dirty = commit.partition("+")
    return sha[:7] + (f"+{dirty}" if dirty else "")

