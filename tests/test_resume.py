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

from medivision.inference.checkpoints import load_checkpoint
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


def test_the_loader_resumes_within_its_epoch_and_starts_a_new_epoch_whole():
    from torch.utils.data import DistributedSampler, TensorDataset

    from medivision.data.loader import ResumableLoader

    def loader():
        data = TensorDataset(torch.arange(10))
        return ResumableLoader(data, batch_size=2, sampler=DistributedSampler(data, num_replicas=1, rank=0, seed=3))

    first = loader()
    first.sampler.set_epoch(4)
    order = [batch[0].tolist() for batch in first]
    first.sampler.set_epoch(4)
    batches = iter(first)
    seen = [next(batches)[0].tolist(), next(batches)[0].tolist()]
    assert seen == order[:2] and first.state_dict() == {"epoch": 4, "served": 2}

    same_epoch = loader()
    same_epoch.load_state_dict(first.state_dict())
    same_epoch.sampler.set_epoch(4)
    assert [batch[0].tolist() for batch in same_epoch] == order[2:]  # the rest of the interrupted epoch
    next_epoch = loader()
    next_epoch.load_state_dict({"epoch": 4, "served": 5})  # a checkpoint from the end of epoch 4
    next_epoch.sampler.set_epoch(5)
    assert len([batch for batch in next_epoch]) == 5  # epoch 5 starts from its first batch
    assert next_epoch.state_dict() == {"epoch": 5, "served": 5}


def test_resume_from_the_last_batch_of_an_epoch_matches_an_uninterrupted_run(kaggle_root, tmp_path):
    """last.ckpt written after an epoch's last batch, the run then crashing before validation: the resumed run
    starts the next epoch from its first batch and ends with the uninterrupted run's weights."""
    from medivision.train import train
    from tests.training import compose_train

    def run(out, *extra):
        train(compose_train(tiny(kaggle_root, out, "model.pretrain_epochs=1", "data.degradation=random",
                                 "trainer.max_epochs=2", "trainer.deterministic=true",
                                 "callbacks.last_checkpoint.every_n_train_steps=1", "logger=none", "test=false",
                                 *extra)))
        return load_checkpoint(out / "checkpoints" / "last.ckpt")

    whole = run(tmp_path / "whole")
    with pytest.raises(RuntimeError, match="this object cannot be saved"):  # the save after validation fails
        run(tmp_path / "split", "+callbacks.fault._target_=tests.faults.FailWhileSaving", "+callbacks.fault.step=2",
            "+callbacks.fault.spare=1")
    interrupted = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.ckpt")
    assert interrupted["global_step"] == 2 and interrupted["epoch"] == 0  # the last of epoch 0's 2 batches
    resumed = run(tmp_path / "split", "ckpt_path=last")
    assert resumed["global_step"] == whole["global_step"] == 2 + 4
    assert all(torch.equal(resumed["state_dict"][key], value) for key, value in whole["state_dict"].items())
