"""W&B that cannot start does not stop training: the run logs to CSV instead, with one warning."""

from __future__ import annotations

import csv
import warnings

import pytest

from medivision.train import train
from tests.training import compose_train, tiny


def train_with(kaggle_root, out, *overrides) -> list[str]:
    """Train a tiny model with the W&B logger configured by `overrides`; return our fallback warnings."""
    cfg = compose_train(tiny(kaggle_root, out, "logger=wandb", *overrides))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metric = train(cfg)
    assert metric is not None and 5 < metric < 60  # trained, validated and tested
    with open(next(out.glob("csv/version_*/metrics.csv"))) as file:
        assert any(row.get("val/psnr") for row in csv.DictReader(file))
    return [str(w.message) for w in caught if str(w.message).startswith("W&B could not start")]


def test_bad_wandb_mode_falls_back_to_csv(kaggle_root, tmp_path):
    (message,) = train_with(kaggle_root, tmp_path, "logger.wandb.mode=offlne")
    assert message.startswith("W&B could not start (ValueError: logger.wandb.mode='offlne' is not one of auto, "
                              f"online, offline, disabled); logging to CSV in {tmp_path / 'csv' / 'version_0'} instead")
    assert not (tmp_path / "wandb").exists()


def test_unwritable_wandb_folder_falls_back_to_csv(kaggle_root, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the W&B folder should be\n")
    (message,) = train_with(kaggle_root, tmp_path, f"logger.wandb.save_dir={blocker / 'wandb'}")
    assert "W&B could not start (" in message and "not_a_folder" in message


def test_wandb_run_that_fails_to_start_falls_back_to_csv(kaggle_root, tmp_path, monkeypatch):
    # online mode without credentials: wandb.init itself refuses, when the run starts
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / ".config" / "wandb"))
    (message,) = train_with(kaggle_root, tmp_path, "logger.wandb.mode=online")
    assert message.startswith("W&B could not start (UsageError: No API key configured.")


def test_other_logger_errors_are_not_hidden(kaggle_root, tmp_path):
    cfg = compose_train(tiny(kaggle_root, tmp_path, "logger=csv", "logger.csv._target_=lightning.pytorch.loggers.Nope"))
    with pytest.raises(Exception, match="lightning.pytorch.loggers.Nope"):
        train(cfg)
