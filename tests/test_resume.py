"""A training process killed with SIGKILL in the middle of an epoch, while writing a checkpoint, resumes from
last.ckpt and ends exactly where an uninterrupted run ends: same weights, same validation and test numbers."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medivision.checkpoints import load_checkpoint
from tests.training import REPO, tiny

# 5 batches per epoch; epoch 0 pixel-only (1 optimizer step per batch), epochs 1-2 GAN (2 per batch): 25 steps.
# last.ckpt after every batch; `random` degradation and augmentation draw from the generators a resume restores.
RUN = ("model.pretrain_epochs=1", "trainer.max_epochs=3", "trainer.limit_train_batches=5", "trainer.deterministic=true",
       "callbacks.last_checkpoint.every_n_train_steps=1", "data.degradation=random", "logger=csv")


def train_process(kaggle_root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "medivision.train", *tiny(kaggle_root, out, *RUN, *extra)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def final_metrics(out: Path) -> list[dict]:
    """The validation and test rows of the run's last CSV log: epoch 2's validation, then validate() and test()."""
    path = max(out.glob("csv/version_*/metrics.csv"))
    with open(path) as file:
        rows = [{key: value for key, value in row.items() if value and key.split("/")[0] in ("val", "test")}
                for row in csv.DictReader(file)]
    return [row for row in rows if row][-3:]


@pytest.mark.slow
def test_sigkill_during_a_mid_epoch_save_then_resume_matches_an_uninterrupted_run(kaggle_root, tmp_path):
    whole = train_process(kaggle_root, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]

    killed = train_process(kaggle_root, tmp_path / "killed", "+callbacks.fault._target_=tests.faults.KillWhileSaving",
                           "+callbacks.fault.step=20")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    folder = tmp_path / "killed" / "checkpoints"
    assert len(list(folder.glob(".last.ckpt.*.tmp"))) == 1  # the save of step 21 died half-written...
    interrupted = load_checkpoint(folder / "last.ckpt")  # ...and left the one of step 19 whole
    assert interrupted["global_step"] == 19 and interrupted["epoch"] == 2
    loops = interrupted["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    assert loops["completed"] < 5  # in the middle of the epoch (2 of its 5 batches done)

    resumed = train_process(kaggle_root, tmp_path / "killed", "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert final_metrics(tmp_path / "killed") == final_metrics(tmp_path / "whole")
    assert len(final_metrics(tmp_path / "whole")) == 3 and "test/psnr" in final_metrics(tmp_path / "whole")[-1]
    for name in ("last.ckpt", "best-epoch002.ckpt"):
        expected = load_checkpoint(tmp_path / "whole" / "checkpoints" / name)
        got = load_checkpoint(folder / name)
        assert got["global_step"] == expected["global_step"] == 25
        assert all(torch.equal(got["state_dict"][key], value) for key, value in expected["state_dict"].items())
