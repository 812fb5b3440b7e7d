"""Export: the ONNX and TorchScript files compute what PyTorch computes, at any size, and say how closely."""

import json
import warnings

import numpy as np
import onnx
import pytest
import torch

from medivision.export import export
from medivision.inference.models import load_model
from tests.clinic import compose_config


def _export(checkpoint, output, *extra):
    return export(compose_config("export", [f"ckpt={checkpoint}", f"output={output}", *extra]))


def test_onnx_export_agrees_with_pytorch_at_any_size(tiny_checkpoint, tmp_path):
    output = tmp_path / "tiny.onnx"
    check = _export(tiny_checkpoint, output)
    written = json.loads((tmp_path / "tiny.onnx.check.json").read_text())
    assert written["max_abs_diff"] == check["max_abs_diff"]
    assert set(check["max_abs_diff"]) == {"32x32", "45x61"}
    assert 0 <= max(check["max_abs_diff"].values()) < 1e-5

    metadata = {p.key: p.value for p in onnx.load(str(output)).metadata_props}
    assert metadata["scale"] == "4" and json.loads(metadata["generator"])["channels"] == 8
    exported, pytorch = load_model(output), load_model(tiny_checkpoint)
    lr = np.random.default_rng(1).random((3, 1, 17, 50), dtype=np.float32)  # batch and size not seen above
    sr = exported(lr)
    assert sr.shape == (3, 1, 68, 200)
    assert np.abs(sr - pytorch(lr)).max() < 1e-5
    assert sr.min() >= 0 and sr.max() <= 1


def test_torchscript_export(tiny_checkpoint, tmp_path):
    output = tmp_path / "tiny.pt"
    check = _export(tiny_checkpoint, output, "format=torchscript")
    assert max(check["max_abs_diff"].values()) < 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(output))
    lr = torch.rand(1, 1, 21, 13)
    assert np.allclose(scripted(lr).numpy(), load_model(tiny_checkpoint)(lr.numpy()), atol=1e-6)


def test_export_refuses_to_overwrite_and_unknown_formats(tiny_checkpoint, tmp_path):
    output = tmp_path / "tiny.onnx"
    output.write_text("something precious")
    with pytest.raises(ValueError, match="tiny.onnx already exists: choose another output=, or pass overwrite=true"):
        _export(tiny_checkpoint, output)
    assert output.read_text() == "something precious"
    with pytest.raises(ValueError, match="format='tflite' is not one of onnx, torchscript"):
        _export(tiny_checkpoint, tmp_path / "x.tflite", "format=tflite")


def test_default_output_sits_beside_the_checkpoint(tiny_checkpoint, tmp_path):
    checkpoint = tmp_path / "run" / "best.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(tiny_checkpoint.read_bytes())
    check = export(compose_config("export", [f"ckpt={checkpoint}"]))
    assert check["file"] == str(tmp_path / "run" / "best.onnx")
