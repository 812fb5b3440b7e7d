"""ONNX files of a generator: written with MediVision's metadata, run with onnxruntime."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from medivision.inference.checkpoints import UNRECORDED_INTENSITY


class OnnxSR:
    """An ONNX file written by medivision.export, run with onnxruntime on the CPU (or CUDA when asked)."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        import onnxruntime

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else [
            "CPUExecutionProvider"]
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types for every kind of bad file
            raise ValueError(
                f"{path} cannot be loaded as an ONNX model: {str(error).splitlines()[0]}; "
                f"write one with `python -m medivision.export ckpt=... format=onnx`"
            ) from error
        metadata = self.session.get_modelmeta().custom_metadata_map
        if "scale" not in metadata:
            raise ValueError(f"{path} has no 'scale' metadata: it was not written by medivision.export")
        self.scale = int(metadata["scale"])
        self.config = json.loads(metadata.get("generator", "{}"))
        self.intensity = metadata.get("intensity", UNRECORDED_INTENSITY)
        self.input_name = self.session.get_inputs()[0].name
        self.name = Path(path).name

    def __call__(self, lr: Tensor) -> Tensor:
        array = np.ascontiguousarray(lr.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


def write_onnx(model: nn.Module, output: Path, config: dict, source: str, opset: int, intensity: str) -> None:
    """Write `model` (LR [B, 1, h, w] -> SR) as ONNX with dynamic batch and size, and MediVision's metadata:
    scale, the generator config, `source` (the file it came from) and `intensity` (the policy its inputs were
    mapped to [0, 1] with in training, medivision.io.intensity)."""
    import onnx

    example = torch.rand(1, 1, 32, 32)
    with warnings.catch_warnings():
        # The dynamo-based exporter needs onnxscript, which MediVision does not depend on; the TorchScript-
        # based one is deprecated but exports this network exactly (see the check).
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
        torch.onnx.export(
            model, (example,), str(output), input_names=["lr"], output_names=["sr"], opset_version=opset,
            dynamic_axes={"lr": {0: "batch", 2: "height", 3: "width"},
                          "sr": {0: "batch", 2: "sr_height", 3: "sr_width"}},
            dynamo=False,
        )
    proto = onnx.load(str(output))
    metadata = {"scale": str(config["scale"]), "generator": json.dumps(config), "checkpoint": source,
                "intensity": intensity,
                "note": "output is a model estimate, not a measurement; input and output in [0, 1]"}
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "medivision"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(output))
