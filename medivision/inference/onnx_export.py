"""Writing a generator as ONNX, with MediVision's metadata (needs torch and onnx: the [train] extra)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


def write_onnx(model: nn.Module, output: Path, metadata: dict[str, str], opset: int) -> None:
    """Write `model` (LR [B, 1, h, w] -> SR) as ONNX with dynamic batch and size, and `metadata` (the model file's,
    medivision.inference.model_file.model_metadata) as its metadata properties."""
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
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "medivision"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(output))
