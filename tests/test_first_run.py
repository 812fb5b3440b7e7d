"""A first run is quiet: the third-party notices that say nothing about the run are gone, the rest still shows."""

import logging
import warnings

import lightning as L
from torch.utils._pytree import LeafSpec

from medivision.training.loggers import finish_run, wandb_logger
from medivision.training.notices import silence_third_party_notices


def test_lightning_tip_is_dropped_and_its_other_notices_still_show(caplog):
    silence_third_party_notices()
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        L.Trainer(logger=False, accelerator="cpu", enable_progress_bar=False)
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("GPU available") for message in messages)
    assert not any("Tip" in message for message in messages)


def test_torch_leafspec_deprecation_is_silenced_and_other_future_warnings_are_not():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_third_party_notices()
        LeafSpec()  # what Lightning builds on every fit
        warnings.warn("an unrelated change to come", FutureWarning, stacklevel=1)
    assert [str(warning.message) for warning in caught] == ["an unrelated change to come"]


def test_an_offline_wandb_run_starts_without_the_anonymous_setting_warning(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    logger = wandb_logger(save_dir=str(tmp_path), project="quiet", mode="offline")
    try:
        assert logger.experiment.settings.mode == "offline"
    finally:
        finish_run()
    printed = capfd.readouterr()
    assert "wandb" in printed.err + printed.out  # W&B did speak: its run lines
    assert "anonymous" not in printed.err + printed.out
