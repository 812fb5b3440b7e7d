"""The torch backend: checkpoints and MediVision model files run by PyTorch (the [train] extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medivision.inference.checkpoints import load_generator
from medivision.inference.model_file import degradation_of
from medivision.inference.models import check_device
from medivision.nets import ClampedGenerator


def inference_device(device: str) -> torch.device:
    """`device=` as a torch.device: cpu, or cuda / cuda:N on a machine that has that GPU. Anything else is a
    ValueError naming the key and the fix, before any model is loaded (torch would fail later, at the first
    tensor moved, with a traceback)."""
    parsed = torch.device(check_device(device))
    if parsed.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(f"device={device}: torch {torch.__version__} finds no CUDA GPU on this machine; "
                             "use device=cpu")
        if (parsed.index or 0) >= count:
            raise ValueError(f"device={device}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return parsed


class TorchSR:
    """The EMA generator of a MediVision checkpoint, or the generator of a model file (.safetensors), output clamped
    to [0, 1] (as SRModule.forward): LR float32 [B, 1, h, w] in [0, 1] -> SR float32 [B, 1, scale*h, scale*w].

    precision "bf16": convolutions under bfloat16 autocast, outputs back in float32. On CPUs with bf16
    instructions (and on GPUs) about twice as fast; python -m medivision.benchmark measures the speed and
    the PSNR change on your machine. threads: torch's intra-op threads (0: torch's default, one per core).
    """

    def __init__(self, path: str | Path, device: str = "cpu", precision: str = "fp32", threads: int = 0):
        path = Path(path)
        trained = load_generator(path)
        self.config, self.intensity, self.provenance = trained.config, trained.intensity, trained.provenance
        self.degradation, self.degradation_options = degradation_of(self.provenance.get("data", {}))
        self.device = inference_device(device)
        self.generator = ClampedGenerator(trained.network).to(self.device)
        self.bf16 = precision == "bf16"
        self.scale = int(self.config["scale"])
        self.name = path.name
        if threads:
            torch.set_num_threads(threads)

    @torch.inference_mode()
    def __call__(self, lr: np.ndarray) -> np.ndarray:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            sr = self.generator(torch.from_numpy(np.ascontiguousarray(lr, np.float32)).to(self.device))
        return sr.float().cpu().numpy()
