"""A first run is quiet: the third-party notices that say nothing about the run are gone, the rest still shows."""

import logging
import os
import subprocess
import sys
import warnings

import lightning as L
from torch.utils._pytree import LeafSpec

from medivision.training.notices import silence_third_party_notices
from tests.training import REPO


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


def test_an_offline_wandb_run_starts_without_the_anonymous_setting_warning(tmp_path):
    # A fresh process: W&B prints each warning once per process, and keeps its first settings (quiet or not).
    script = ("from medivision.training.loggers import finish_run, wandb_logger\n"
              f"logger = wandb_logger(save_dir={str(tmp_path)!r}, project='quiet', mode='offline')\n"
              "assert logger.experiment.settings.mode == 'offline'\nfinish_run()\n")
    environment = {key: value for key, value in os.environ.items() if key != "WANDB_SILENT"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = done.stdout + done.stderr
    assert "wandb: Tracking run" in printed  # W&B did speak: its run lines
    assert "anonymous" not in printed
