"""Checkpoints load as data: the EMA generator comes out right, and every kind of bad file gets a clear error."""

import pytest
import torch
from hydra.utils import instantiate

from medivision.inference.checkpoints import load_checkpoint, load_generator
from medivision.inference.models import load_model
from medivision.nets.generator import ClampedGenerator
from tests.training import compose_train, tiny


def test_generator_is_the_ema_generator_of_the_module(tiny_checkpoint, kaggle_root, tmp_path):
    module = instantiate(compose_train(tiny(kaggle_root, tmp_path)).model)
    module.load_state_dict(load_checkpoint(tiny_checkpoint)["state_dict"])
    module.eval()
    lr = torch.rand(2, 1, 20, 28, generator=torch.Generator().manual_seed(0))
    generator, config, intensity, provenance = load_generator(tiny_checkpoint)
    assert provenance["data"]["source"] == "kaggle"
    assert intensity == "minmax"
    assert config["channels"] == 8 and config["blocks"] == 1 and config["attention"] == "cbam"
    with torch.no_grad():
        expected = module(lr)
        assert not torch.equal(ClampedGenerator(module.generator)(lr), expected)  # EMA and live weights differ
        assert torch.equal(ClampedGenerator(generator)(lr), expected)
    assert torch.equal(torch.from_numpy(load_model(tiny_checkpoint)(lr.numpy())), expected)


def test_truncated_checkpoint(tiny_checkpoint, tmp_path):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated.ckpt cannot be loaded as a checkpoint"):
        load_model(truncated)


def test_file_that_is_not_a_checkpoint(tmp_path):
    notes = tmp_path / "notes.ckpt"
    notes.write_text("epoch 3 looked best\n")
    with pytest.raises(ValueError, match="notes.ckpt cannot be loaded as a checkpoint"):
        load_model(notes)


class Payload:
    """Anything pickled as an object: loading it would run code, so weights_only refuses it."""


def test_checkpoint_with_code_objects_is_refused(tmp_path):
    path = tmp_path / "code.ckpt"
    torch.save({"state_dict": {}, "payload": Payload()}, path)
    with pytest.raises(ValueError, match="contains code objects, which are refused"):
        load_checkpoint(path)


def test_checkpoint_of_another_model(tmp_path):
    path = tmp_path / "classifier.ckpt"
    torch.save({"state_dict": {"fc.weight": torch.zeros(4, 8)}, "hyper_parameters": {"lr": 0.1}}, path)
    with pytest.raises(ValueError, match=r"classifier.ckpt has no hyper_parameters\['generator'\]"):
        load_generator(path)


def test_weights_that_do_not_fit_the_saved_config(tiny_checkpoint, tmp_path):
    checkpoint = load_checkpoint(tiny_checkpoint)
    checkpoint["hyper_parameters"]["generator"]["channels"] = 16
    path = tmp_path / "edited.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=r"edited.ckpt: the EMA generator weights do not fit the generator config "
                                         r"saved with them \(channels=16.*shape file vs config: head.0.weight "
                                         r"\(8, 1, 9, 9\) vs \(16, 1, 9, 9\)"):
        load_generator(path)


def test_checkpoint_without_ema_weights(tiny_checkpoint, tmp_path):
    checkpoint = load_checkpoint(tiny_checkpoint)
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("ema.")}
    path = tmp_path / "no_ema.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="no_ema.ckpt holds no EMA generator weights"):
        load_generator(path)


def test_missing_file_and_bad_onnx(tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt=.*missing.ckpt does not exist"):
        load_model(tmp_path / "missing.ckpt")
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ValueError, match="model.onnx cannot be loaded as an ONNX model"):
        load_model(fake)
