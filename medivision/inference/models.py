"""A trained generator from any file, behind one small interface: ONNX files (ONNX Runtime, the core install),
checkpoints and MediVision model files (.safetensors; PyTorch, the [train] extra), and the bundled general model.

Everything here works on float32 numpy arrays in [0, 1]; mapping file intensities to and from that range is
the job of medivision.io.intensity.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol

import numpy as np

from medivision.inference.model_file import BUNDLED_MODEL, MODEL_FILES, bundled_model_path, short_commit
from medivision.inference.onnx import OnnxSR
from medivision.io.errors import TRAIN_EXTRA
from medivision.io.intensity import INTENSITY_POLICIES

PRECISIONS = ("fp32", "bf16")
DEVICES = ("cpu", "cuda")


class SRModel(Protocol):
    """A super-resolution network: LR float32 [B, 1, h, w] in [0, 1] -> SR [B, 1, scale*h, scale*w] in [0, 1]."""

    scale: int
    name: str
    intensity: str  # the policy its inputs were mapped to [0, 1] with in training (medivision.io.intensity)
    degradation: str  # how its training LR was made (data.degradation), and that kind's options
    degradation_options: dict
    provenance: dict  # {"command", "commit", "data"}, as far as the file records them

    def __call__(self, lr: np.ndarray) -> np.ndarray: ...


def load_model(path: str | Path | None, device: str = "cpu", precision: str = "fp32", threads: int = 0,
               bundled: str = BUNDLED_MODEL, on_torch: bool = False) -> SRModel:
    """A model by its file, chosen by the file name: an exported ONNX file (.onnx) on ONNX Runtime; a checkpoint of
    medivision.train or a MediVision model file (.safetensors) on PyTorch; None: the bundled model `bundled` (ONNX,
    or its .safetensors twin for precision=bf16, device=cuda or on_torch, which fine-tuning needs).
    precision: fp32 | bf16 (PyTorch only). threads: intra-op threads (0: one per core)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    check_device(device)
    if path is None:
        torch_backend = on_torch or precision != "fp32" or device != "cpu"
        if torch_backend and not has_torch():
            raise ValueError(f"precision={precision} device={device}: the bundled model runs so on PyTorch, which is "
                             f"not installed: {TRAIN_EXTRA}, or use precision=fp32 device=cpu (ONNX Runtime)")
        model = _load(bundled_model_path(".safetensors" if torch_backend else ".onnx", bundled), device, precision,
                      threads)
        model.name = f"the bundled {bundled} model {model.name} (commit {short_commit(model.provenance['commit'])})"
        return _checked(model)
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt={path} does not exist: pass {_described()}, or no ckpt for the bundled "
                                "general model")
    return _checked(_load(path, device, precision, threads))


def _checked(model: SRModel) -> SRModel:
    """`model`, unless the intensity policy its file records is none this version knows (enhance and the node map
    their inputs with it)."""
    if model.intensity not in INTENSITY_POLICIES:
        raise ValueError(f"{model.name} records intensity={model.intensity!r}, which is not one of "
                         f"{', '.join(INTENSITY_POLICIES)}: it was written by another version of MediVision")
    return model


def check_device(device: str) -> str:
    """`device=` as given when it is cpu, cuda or cuda:N; else a ValueError naming the key and the fix, before any
    model is loaded. Whether that GPU exists is the backend's to say."""
    kind, _, index = str(device).partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"device={device!r} is not one of {', '.join(DEVICES)} (cuda:N for the Nth GPU)")
    return device


def _load(path: Path, device: str, precision: str, threads: int) -> SRModel:
    known = MODEL_FILES.get(path.suffix.lower())  # (what it is, backend); None: tried as a PyTorch file
    if known and known[1] == "onnx":
        if precision != "fp32":
            raise ValueError(f"precision={precision} applies to checkpoints and model files; {path.name} is an ONNX "
                             "file, which runs in float32: use precision=fp32 or the .safetensors/.ckpt file")
        return OnnxSR(path, device, threads)
    try:
        from medivision.inference.torch_model import TorchSR
    except ImportError as error:
        raise ValueError(f"ckpt={path} is a PyTorch file, and PyTorch is not installed ({error.name} is missing): "
                         f"{TRAIN_EXTRA}, or pass an .onnx file (medivision-export format=onnx)") from error
    try:
        return TorchSR(path, device, precision, threads)
    except ValueError as error:
        if known:
            raise
        raise ValueError(f"ckpt={path} is none of {_described()}: {error}") from error


def _described() -> str:
    """The model files the tools read, for messages."""
    described = [what for what, _ in MODEL_FILES.values()]
    return ", ".join(described[:-1]) + " or " + described[-1]


def has_torch() -> bool:
    """Whether PyTorch (the [train] extra) is installed, without importing it."""
    return importlib.util.find_spec("torch") is not None
