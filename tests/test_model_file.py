"""MediVision model files (safetensors), the bundled general model, and the self-ensemble."""

from __future__ import annotations

import json

import numpy as np
import onnx as onnx_file
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from medivision.enhance import enhance
from medivision.evaluate import evaluate
from medivision.export import export
from medivision.inference.ensemble import self_ensemble
from medivision.inference.model_file import FORMAT, bundled_model_path, read_model_file, write_model_file
from medivision.inference.models import load_model
from medivision.io.errors import one_line_errors
from tests.clinic import brain_slices, compose_config


def test_safetensors_export_keeps_the_weights_and_says_how_the_model_was_made(tiny_checkpoint, tmp_path):
    output = tmp_path / "tiny.safetensors"
    check = export(compose_config("export", [f"ckpt={tiny_checkpoint}", f"output={output}", "format=safetensors"]))
    assert max(check["max_abs_diff"].values()) == 0.0
    metadata = read_model_file(output)[1]
    assert metadata["format"] == FORMAT and metadata["scale"] == "4" and metadata["intensity"] == "minmax"
    assert json.loads(metadata["generator"])["channels"] == 8
    assert json.loads(metadata["degradation"])["kind"] == "bicubic"
    assert metadata["command"].startswith("python -m medivision.train") and metadata["checkpoint"] == "last.ckpt"
    assert len(metadata["commit"].split("+")[0]) == 40  # the tests run in a git checkout
    assert json.loads(metadata["data"])["source"] == "kaggle"
    lr = np.random.default_rng(0).random((2, 1, 19, 23), dtype=np.float32)
    assert np.array_equal(load_model(output)(lr), load_model(tiny_checkpoint)(lr))


def _load_error(path, capsys) -> str:
    @one_line_errors("medivision.enhance")
    def load():
        load_model(path)

    with pytest.raises(SystemExit):
        load()
    return capsys.readouterr().err.strip()


def test_files_that_are_no_model_get_one_line(tmp_path, capsys):
    foreign = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3)}, str(foreign), metadata={"format": "pt"})
    error = _load_error(foreign, capsys)
    assert "other.safetensors is a safetensors file without MediVision metadata" in error
    assert "python -m medivision.export ckpt=... format=safetensors" in error and len(error.splitlines()) == 1
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    error = _load_error(broken, capsys)
    assert "broken.safetensors cannot be read as a safetensors file" in error and len(error.splitlines()) == 1
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    error = _load_error(notes, capsys)
    assert "ckpt=" in error and "notes.txt is none of a checkpoint (.ckpt, from medivision.train), an ONNX file " \
        "(.onnx, from medivision.export) or a safetensors model file" in error and len(error.splitlines()) == 1


def test_a_model_file_recording_an_unknown_intensity_policy_is_one_line(tmp_path, capsys):
    weights, metadata = read_model_file(bundled_model_path(".safetensors"))
    foreign = tmp_path / "foreign.safetensors"
    write_model_file(weights, {**metadata, "intensity": "percentile"}, foreign)
    error = _load_error(foreign, capsys)
    assert "records intensity='percentile', which is not one of minmax, dtype" in error
    assert len(error.splitlines()) == 1


def test_the_bundled_model_is_small_and_carries_its_provenance():
    path = bundled_model_path(".safetensors")
    assert path.stat().st_size <= 2 * 1024 * 1024 and bundled_model_path(".onnx").stat().st_size <= 2 * 1024 * 1024
    assert (path.parent / "MODEL_CARD.md").is_file()
    metadata = read_model_file(path)[1]
    assert metadata["command"] == "python -m medivision.train +experiment=general"
    assert json.loads(metadata["data"])["source"] == "synth"
    assert json.loads(metadata["degradation"])["kind"] == "random"
    model = load_model(None)
    assert model.name.startswith("the bundled general model general.onnx (commit ")
    assert (model.degradation, model.intensity) == ("random", "minmax")
    assert model.provenance["commit"] == metadata["commit"]
    lr = np.random.default_rng(4).random((2, 1, 32, 40), dtype=np.float32)
    onnx, twin = model(lr), load_model(path)
    assert onnx.shape == (2, 1, 128, 160)
    # the two bundled files hold the same network, and say the same of it
    assert np.abs(onnx - twin(lr)).max() < 1e-5
    assert (twin.degradation, twin.degradation_options) == (model.degradation, model.degradation_options)
    onnx_metadata = {prop.key: prop.value for prop in onnx_file.load(str(bundled_model_path(".onnx"))).metadata_props}
    assert onnx_metadata == metadata  # the twin says the same of itself, down to the checkpoint it came from


def test_an_onnx_file_asked_to_run_on_a_gpu_it_cannot_use_is_one_line():
    with pytest.raises(ValueError, match=r"device=cuda: this onnxruntime \(.*\) has no CUDAExecutionProvider; use "
                                         r"device=cpu, or install onnxruntime-gpu"):
        load_model(bundled_model_path(".onnx"), device="cuda")


def test_self_ensemble_averages_the_eight_turns(tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    lr = torch.rand(2, 1, 12, 16, generator=torch.Generator().manual_seed(3))  # not square: turns transpose it
    mean, spread = self_ensemble(model, lr.numpy(), 8)
    outputs = []
    for k in range(4):
        for flip in (False, True):
            turned = torch.rot90(lr, k, (-2, -1))
            turned = turned.flip(-1) if flip else turned
            sr = torch.from_numpy(model(turned.contiguous().numpy()))
            sr = sr.flip(-1) if flip else sr
            outputs.append(torch.rot90(sr, -k, (-2, -1)))
    stack = torch.stack(outputs)
    torch.testing.assert_close(torch.from_numpy(mean), stack.mean(0))
    torch.testing.assert_close(torch.from_numpy(spread), stack.std(0, correction=0))
    assert mean.shape == spread.shape == (2, 1, 48, 64) and spread.max() > 0
    single, none = self_ensemble(model, lr.numpy(), 1)
    assert none is None and np.array_equal(single, model(lr.numpy()))

    def symmetric(x):  # a model that commutes with every turn has no spread
        return x.repeat(4, -1).repeat(4, -2)

    assert np.abs(self_ensemble(symmetric, lr.numpy(), 8)[1]).max() < 1e-6


def test_enhance_and_evaluate_use_the_bundled_model_without_ckpt_and_name_it(tmp_path):
    source = tmp_path / "slice.png"
    Image.fromarray((brain_slices(1, 24, 20)[0] * 255).astype(np.uint8)).save(source)
    report = enhance(compose_config("enhance", [f"input={source}", f"output={tmp_path / 'sr.png'}"]))
    assert report.model.startswith("the bundled general model general.onnx")
    assert "model the bundled general model general.onnx (commit" in Image.open(
        tmp_path / "sr.png").text["Description"]
    result = evaluate(compose_config("evaluate", [
        "data=mni152", f"data.cache_dir={tmp_path / 'cache'}", "data.limit=4", f"paths.output_dir={tmp_path}"]))
    assert result.report.startswith("# Evaluation of the bundled general model general.onnx")
