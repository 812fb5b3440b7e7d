"""Training faults in real runs: NaN/Inf losses are skipped and counted, too many stop the run, checkpoints are
written atomically, and the same seed and config give the same numbers."""

from __future__ import annotations

import csv
import math

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.plugins.precision import MixedPrecision

from medivision.inference.checkpoints import load_checkpoint
from medivision.train import train
from medivision.training.nan_guard import TrainingDiverged
from tests.training import compose_train, tiny


class Weights(L.Callback):
    """G and D weights before and after every training batch."""

    def __init__(self):
        self.before, self.after = [], []

    @staticmethod
    def _copy(module):
        return [p.detach().clone() for p in [*module.generator.parameters(), *module.discriminator.parameters()]]

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.before.append(self._copy(module))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.after.append(self._copy(module))


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def all_finite(state: dict) -> bool:
    return all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


def read_metrics(folder) -> list[dict]:
    (path,) = folder.glob("csv/version_*/metrics.csv")
    with open(path) as file:
        return list(csv.DictReader(file))


PRECISIONS = {
    "32-true": {},
    "bf16-mixed": {"precision": "bf16-mixed"},
    # Lightning turns precision=16-mixed into bf16-mixed on a CPU; its plugin, given directly, keeps float16 and
    # the GradScaler that skips non-finite updates itself, as on a GPU (float16 on a CPU takes about a minute).
    "16-mixed": {"precision": None, "plugins": [MixedPrecision("16-mixed", "cpu")]},
}


@pytest.mark.parametrize(("fused", "precision"), [  # fused: skipped on the device; not fused: decided by the host
    (True, "32-true"), (False, "32-true"), (True, "bf16-mixed"), (False, "bf16-mixed"),
    pytest.param(True, "16-mixed", marks=pytest.mark.slow),
])
def test_a_nan_batch_is_skipped_and_counted(fused, precision, kaggle_root, tmp_path):
    cfg = compose_train(tiny(kaggle_root, tmp_path, "data._target_=tests.faults.nan_batches", "+data.nan_batches=[1]",
                             "model.pretrain_epochs=0", "trainer.limit_train_batches=4", "logger=csv",
                             f"model.optimizer_g.fused={fused}", f"model.optimizer_d.fused={fused}"))
    weights = Weights()
    module = instantiate(cfg.model)
    callbacks = [instantiate(callback) for callback in cfg.callbacks.values()]
    trainer = instantiate(cfg.trainer, logger=[instantiate(cfg.logger.csv)], callbacks=[*callbacks, weights],
                          **PRECISIONS[precision])
    trainer.fit(module, datamodule=instantiate(cfg.data))
    assert same(weights.before[1], weights.after[1])  # the NaN batch changed neither G nor D
    assert not same(weights.before[0], weights.after[0]) and not same(weights.before[2], weights.after[2])
    assert module.skipped_steps == 1 and module.bad_steps == 0
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 2 * 4  # two optimizer steps per GAN batch, the skipped batch's included
    assert checkpoint["skipped_steps"] == 1 and all_finite(checkpoint["state_dict"])
    logged = [row["train/skipped_steps"] for row in read_metrics(tmp_path) if row.get("train/skipped_steps")]
    assert logged == ["1.0"]


def test_too_many_bad_batches_in_a_row_stop_the_run_and_keep_the_last_checkpoint(kaggle_root, tmp_path):
    # Batches 2, 3, 4 are bad; the check after batch 4 (every 5 batches) stops the run, mid-epoch.
    cfg = compose_train(tiny(kaggle_root, tmp_path, "data._target_=tests.faults.nan_batches", "+data.nan_from=2",
                             "model.max_bad_steps=3", "model.pretrain_epochs=1", "trainer.limit_train_batches=8",
                             "trainer.log_every_n_steps=5", "callbacks.last_checkpoint.every_n_train_steps=1",
                             "logger=none"))
    last = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(TrainingDiverged, match=rf"training stopped: 3 batches in a row had a non-finite loss \(g_loss "
                                               rf"is NaN or Inf; epoch 0, from global step 2\).*Last checkpoint: "
                                               rf"{last}\. Lower the learning rates"):
        train(cfg)
    checkpoint = load_checkpoint(last)
    assert checkpoint["global_step"] == 5 and checkpoint["skipped_steps"] == 3  # written after batch 4
    assert all_finite(checkpoint["state_dict"])


def test_an_exception_while_saving_leaves_the_previous_checkpoint(kaggle_root, tmp_path):
    cfg = compose_train(tiny(kaggle_root, tmp_path, "+callbacks.fault._target_=tests.faults.FailWhileSaving",
                             "+callbacks.fault.step=2", "callbacks.last_checkpoint.every_n_train_steps=1",
                             "model.pretrain_epochs=1", "trainer.limit_train_batches=3", "logger=none"))
    with pytest.raises(RuntimeError, match="this object cannot be saved"):
        train(cfg)
    folder = tmp_path / "checkpoints"
    assert load_checkpoint(folder / "last.ckpt")["global_step"] == 1  # the save of step 2 failed mid-write
    assert [path.name for path in folder.iterdir()] == ["last.ckpt"]  # and left no temporary file


@pytest.mark.parametrize("degradation", ["bicubic", "random"])
def test_same_seed_and_config_give_identical_metrics(degradation, kaggle_root, tmp_path):
    def run(folder, seed):
        train(compose_train(tiny(kaggle_root, tmp_path / folder, f"seed={seed}", f"data.degradation={degradation}",
                                 "model.pretrain_epochs=1", "trainer.max_epochs=2", "trainer.deterministic=true",
                                 "trainer.log_every_n_steps=1", "logger=csv")))
        rows = read_metrics(tmp_path / folder)
        return rows, load_checkpoint(tmp_path / folder / "checkpoints" / "last.ckpt")["state_dict"]

    first, first_weights = run("first", 7)
    second, second_weights = run("second", 7)
    other, _ = run("other", 8)
    assert first == second and len(first) > 4
    assert {"val/psnr", "test/psnr", "test/ssim", "train/g_loss_step"} <= first[0].keys()
    assert all(math.isfinite(float(row["test/psnr"])) for row in first if row["test/psnr"])
    assert first_weights.keys() == second_weights.keys()
    assert all(torch.equal(first_weights[key], second_weights[key]) for key in first_weights)
    assert other != first  # the seed does matter, so equality above means something


def test_float16_weights_are_refused_before_training(kaggle_root, tmp_path):
    cfg = compose_train(tiny(kaggle_root, tmp_path, "trainer.precision=16-true", "logger=none"))
    with pytest.raises(ValueError, match="trainer.precision=16-true keeps float16 weights.*use trainer.precision="):
        train(cfg)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()  # refused before the first batch
