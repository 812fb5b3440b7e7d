"""A trained generator from any file: one small interface over checkpoints, ONNX files, MediVision model files
(safetensors) and the bundled general model.

Everything here works on float tensors in [0, 1] on the CPU; mapping file intensities to and from that
range is the job of medivision.io.intensity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from medivision.inference.checkpoints import load_generator
from medivision.inference.model_file import bundled_model_path, read_model_file, short_commit
from medivision.inference.onnx import OnnxSR
from medivision.nets import ClampedGenerator


class SRModel(Protocol):
    """A super-resolution network: LR [B, 1, h, w] float32 in [0, 1] -> SR [B, 1, scale*h, scale*w] in [0, 1]."""

    scale: int
    name: str
    intensity: str  # the policy its inputs were mapped to [0, 1] with in training (medivision.io.intensity)

    def __call__(self, lr: Tensor) -> Tensor: ...


PRECISIONS = ("fp32", "bf16")
DEVICES = ("cpu", "cuda")


def inference_device(device: str) -> torch.device:
    """`device=` as a torch.device: cpu, or cuda / cuda:N on a machine that has that GPU. Anything else is a
    ValueError naming the key and the fix, before any model is loaded (torch would fail later, at the first
    tensor moved, with a traceback)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):  # torch lists every backend it knows, most of which MediVision does not run on
        parsed = None
    if parsed is None or parsed.type not in DEVICES:
        raise ValueError(f"device={device!r} is not one of {', '.join(DEVICES)} (cuda:N for the Nth GPU)")
    if parsed.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(f"device={device}: torch {torch.__version__} finds no CUDA GPU on this machine; "
                             "use device=cpu")
        if (parsed.index or 0) >= count:
            raise ValueError(f"device={device}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return parsed


class TorchSR:
    """The EMA generator of a MediVision checkpoint or model file (.safetensors), output clamped to [0, 1] (as
    SRModule.forward).

    precision "bf16": convolutions under bfloat16 autocast, outputs back in float32. On CPUs with bf16
    instructions (and on GPUs) about twice as fast; python -m medivision.benchmark measures the speed and
    the PSNR change on your machine.
    """

    def __init__(self, path: str | Path, device: str = "cpu", precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
        path = Path(path)
        trained = read_model_file(path)[0] if path.suffix.lower() == ".safetensors" else load_generator(path)
        self.config, self.intensity, self.provenance = trained.config, trained.intensity, trained.provenance
        self.device = torch.device(device)
        self.generator = ClampedGenerator(trained.network).to(self.device)
        self.bf16 = precision == "bf16"
        self.scale = int(self.config["scale"])
        self.name = path.name

    @torch.inference_mode()
    def __call__(self, lr: Tensor) -> Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            sr = self.generator(lr.to(self.device, torch.float32))
        return sr.float().cpu()


def load_model(path: str | Path | None, device: str = "cpu", precision: str = "fp32") -> SRModel:
    """A model by its file, chosen by the file name: an exported ONNX file (.onnx), a MediVision model file
    (.safetensors), else a checkpoint of medivision.train; None: the bundled general model. precision: fp32 |
    bf16 (not for ONNX files, which run in the precision they were exported in)."""
    device = str(inference_device(device))
    if path is None:
        model = TorchSR(bundled_model_path(), device, precision)
        model.name = f"the bundled general model {model.name} (commit {short_commit(model.provenance['commit'])})"
        return model
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt={path} does not exist: pass a .ckpt checkpoint, an exported .onnx or "
                                ".safetensors file, or no ckpt for the bundled general model")
    if path.suffix.lower() != ".onnx":
        try:
            return TorchSR(path, device, precision)
        except ValueError as error:
            if path.suffix.lower() in (".ckpt", ".safetensors"):
                raise
            raise ValueError(f"ckpt={path} is none of a checkpoint (.ckpt, from medivision.train), an ONNX or a "
                             f"safetensors model file (from medivision.export): {error}") from error
    if precision != "fp32":
        raise ValueError(f"precision={precision} applies to checkpoints and model files; {path.name} is an ONNX "
                         "file, which runs in float32: use precision=fp32 or the checkpoint")
    return OnnxSR(path, device)
