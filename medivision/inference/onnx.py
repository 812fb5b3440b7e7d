"""ONNX files of a generator, run with ONNX Runtime: the core install's backend (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medivision.inference.model_file import UNRECORDED_INTENSITY, degradation, provenance
from medivision.io.errors import one_line


class OnnxSR:
    """An ONNX file written by medivision.export, run with onnxruntime on the CPU (or CUDA when asked):
    LR float32 [B, 1, h, w] in [0, 1] -> SR float32 [B, 1, scale*h, scale*w] in [0, 1].

    threads: ONNX Runtime's intra-op threads (0: one per core)."""

    def __init__(self, path: str | Path, device: str = "cpu", threads: int = 0):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else [
            "CPUExecutionProvider"]
        # Asked for first, so ONNX Runtime does not warn of a provider it lacks before the error says so.
        if providers[0] not in onnxruntime.get_available_providers():
            raise _no_provider(device, providers[0], onnxruntime.__version__)
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types for every kind of bad file
            raise ValueError(
                f"{path} cannot be loaded as an ONNX model (truncated or not ONNX): {one_line(error)}; "
                f"write one with `medivision-export ckpt=... format=onnx`"
            ) from error
        if providers[0] not in self.session.get_providers():  # installed, but with no device it can use
            raise _no_provider(device, providers[0], onnxruntime.__version__)
        metadata = self.session.get_modelmeta().custom_metadata_map
        if "scale" not in metadata or "generator" not in metadata:
            raise ValueError(f"{path} is an ONNX model without MediVision's metadata (scale, generator): it holds "
                             "some other model; write one with `medivision-export ckpt=... format=onnx`")
        self.scale = int(metadata["scale"])
        self.config = json.loads(metadata["generator"])
        self.intensity = metadata.get("intensity", UNRECORDED_INTENSITY)
        self.degradation, self.degradation_options = degradation(metadata)
        self.provenance = provenance(metadata)
        self.input_name = self.session.get_inputs()[0].name
        self.name = Path(path).name

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(lr, dtype=np.float32)})[0]


def _no_provider(device: str, provider: str, version: str) -> ValueError:
    return ValueError(f"device={device}: this onnxruntime ({version}) has no {provider}; use device=cpu, or install "
                      "onnxruntime-gpu")
