"""Model and data files are loaded as data: a crafted pickle that would run code is refused, and runs nothing."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from medivision.data.settings import data_module
from medivision.inference.checkpoints import load_checkpoint
from medivision.inference.models import load_model
from medivision.train import train
from tests.training import compose_train, tiny


class Payload:
    """Unpickling this calls exec(): it creates the file `marker`, standing in for any code an attacker wants."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def crafted(path: Path, marker: Path, container: str = "torch") -> Path:
    """A file at `path` whose unpickling runs code: a torch.save zip archive or a bare pickle stream."""
    content = {"state_dict": {"generator.head.0.weight": torch.zeros(1)}, "payload": Payload(marker)}
    if container == "torch":
        torch.save(content, path)
    else:
        with open(path, "wb") as file:
            pickle.dump(content, file)
    return path


@pytest.fixture
def marker(tmp_path, monkeypatch) -> Path:
    # Even with the switch that makes torch.load unpickle anything by default, explicit data-only loads hold.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    return tmp_path / "code-ran"


@pytest.mark.parametrize("container", ["torch", "pickle"])
def test_the_crafted_file_really_runs_code_when_unpickled(container, tmp_path, marker):
    path = crafted(tmp_path / "model.ckpt", marker, container)
    if container == "torch":
        torch.load(path, weights_only=False)  # what an unsafe loader would do
    else:
        with open(path, "rb") as file:
            pickle.load(file)
    assert marker.exists()


@pytest.mark.parametrize("container", ["torch", "pickle"])
@pytest.mark.parametrize("name", ["model.ckpt", "model.pt", "best-epoch003.ckpt"])
def test_checkpoints_with_code_are_refused(name, container, tmp_path, marker):
    path = crafted(tmp_path / name, marker, container)
    refused = rf"{name} cannot be loaded as a checkpoint .* which are refused\): Unsupported (global|operand)"
    with pytest.raises(ValueError, match=refused):
        load_checkpoint(path)
    with pytest.raises(ValueError, match=rf"{name} cannot be loaded as a checkpoint"):
        load_model(path)  # evaluate, enhance, compare=[...]
    assert not marker.exists()


def test_a_pickle_named_onnx_is_refused(tmp_path, marker):
    path = crafted(tmp_path / "model.onnx", marker)
    with pytest.raises(ValueError, match="model.onnx cannot be loaded as an ONNX model"):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("key", ["ckpt_path", "model.init_from"])
def test_training_refuses_to_resume_or_start_from_a_crafted_checkpoint(key, kaggle_root, tmp_path, marker):
    path = crafted(tmp_path / "last.ckpt", marker)
    cfg = compose_train(tiny(kaggle_root, tmp_path / "run", f"{key}={path}", "logger=none"))
    # Hydra wraps what the module raises for model.init_from; the message is the same one line
    with pytest.raises(Exception, match=r"last.ckpt cannot be loaded as a checkpoint .* which are refused\): "
                                        r"Unsupported global: GLOBAL exec was not an allowed global"):
        train(cfg)
    assert not marker.exists()


def test_a_crafted_data_cache_is_refused_and_rebuilt(kaggle_root, tmp_path, marker):
    first = data_module(source="kaggle", root=str(kaggle_root), cache_dir=str(tmp_path / "cache"))
    first.setup()
    crafted(first.cache_path, marker)  # someone replaced the shared cache file
    second = data_module(source="kaggle", root=str(kaggle_root), cache_dir=str(tmp_path / "cache"))
    with pytest.warns(UserWarning, match=rf"data cache {first.cache_path} cannot be loaded .*; rebuilding it"):
        second.setup()
    assert not marker.exists()
    assert second.cache_hit is False and torch.equal(second.train_set.hr, first.train_set.hr)
    assert torch.load(first.cache_path, weights_only=True)["paths"]  # the rebuilt file is plain data again
