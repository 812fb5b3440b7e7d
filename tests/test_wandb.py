"""What a training run logs to W&B, read back from real offline runs with W&B's own reader (wandb leet inspect)."""

import json
import statistics

import pytest
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger

from medivision.report.wandb_files import find_run_logs, read_records, read_run
from medivision.train import train
from medivision.training.callbacks import NUMBERS, TABLE_COLUMNS
from medivision.training.loggers import checkpoint_artifacts
from tests.clinic import compose_config
from tests.training import compose_train, tiny


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_offline_training_run_holds_job_type_learning_rates_panels_and_the_per_image_test_table(kaggle_root,
                                                                                                 tmp_path):
    cfg = compose_train(tiny(kaggle_root, tmp_path, "group=unit", "run_name=tiny", "trainer.max_epochs=2",
                             "model.pretrain_epochs=0", "model.lr_milestones=[1]", "model.lr_gamma=0.5",
                             "trainer.log_every_n_steps=1"))
    train(cfg)
    (log,) = find_run_logs(tmp_path / "wandb")
    run = read_run(log)
    assert (run["group"], run["name"], run["job_type"]) == ("unit", "tiny", "train")
    assert run["config"]["model"]["generator"]["channels"] == 8 and "_wandb" not in run["config"]
    history = run["history"]
    keys = {key for row in history for key in row}
    assert {"val/psnr", "val/ssim", "val/bicubic_psnr", "val/bicubic_ssim", "train/g_loss_epoch",
            "train/d_loss_step"} <= keys

    # one rate per optimizer and logged batch (2 per epoch), halved from the second epoch on
    for name, start in (("generator", cfg.model.optimizer_g.lr), ("discriminator", cfg.model.optimizer_d.lr)):
        rates = [row[f"lr/{name}"] for row in history if f"lr/{name}" in row]
        assert rates == pytest.approx([start, start, start / 2, start / 2]), name

    # every sample panel carries a caption that names its columns and calls SR an estimate
    captions = [row["val/samples.captions"] for row in history if "val/samples._type" in row]
    assert len(captions) == 3  # two epochs, then train.py's validation of the best checkpoint
    assert all(len(c) == 1 and "SR (model estimate, not a measurement)" in c[0] for c in captions)

    # the per-image test table: every tested image with its numbers; their mean is test/psnr
    (table_row,) = [row for row in history if "test/per_image._type" in row]
    test_psnr = next(row["test/psnr"] for row in history if "test/psnr" in row)
    table = json.loads((log.parent / "files" / table_row["test/per_image.path"]).read_text())
    assert table["columns"] == list(TABLE_COLUMNS) and table_row["test/per_image.nrows"] == len(table["data"]) == 4
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert [row["image"] for row in rows] == [0, 1, 2, 3] and all(row["file"].endswith(".jpg") for row in rows)
    assert statistics.fmean(row["psnr"] for row in rows) == pytest.approx(test_psnr, abs=1e-4)
    assert all(isinstance(row[name], float) for row in rows for name in NUMBERS)

    # the table's images (in its W&B table artifact) have captions; offline, no checkpoint artifact is made
    artifacts = [record["artifact"] for record in read_records(log) if record["type"] == "artifact"]
    assert [artifact["type"] for artifact in artifacts] == ["run_table"]
    staged = {entry["path"]: entry["local_path"] for entry in artifacts[0]["manifest"]["contents"]}
    full = json.loads(open(staged["test/per_image.table.json"]).read())
    images = [cell for row in full["data"] for cell in row[-2:] if cell is not None]
    assert 0 < len(images) <= 2 * 8 and all(image["_type"] == "image-file" for image in images)
    assert all("SR 4x, a model estimate, not a measurement" in image["caption"] for image in images[::2])
    assert all(image["caption"].endswith("HR (reference)") for image in images[1::2])


def test_checkpoints_become_artifacts_online_only(tmp_path):
    # An online upload cannot be tested without a W&B server; the decision and the logger it builds can.
    assert checkpoint_artifacts("online", True) is True and checkpoint_artifacts("online", "all") == "all"
    assert checkpoint_artifacts("offline", True) is False and checkpoint_artifacts("disabled", "all") is False
    # the configured logger asks for artifacts, and still builds offline, where Lightning refuses log_model
    cfg = compose_train(["data.root=/data", f"paths.output_dir={tmp_path}"])
    assert cfg.logger.wandb.log_model is True and isinstance(instantiate(cfg.logger.wandb), WandbLogger)


@pytest.mark.parametrize("command, overrides, job_type, group", [
    ("train", [], "train", "default"),
    ("train", ["+experiment=cbam_ablation"], "train", "cbam_ablation"),
    ("train", ["hparams_search=optuna"], "train", "optuna"),
    ("evaluate", ["ckpt=best.ckpt", "logger=wandb"], "evaluate", "evaluate"),
    ("benchmark", ["logger=wandb"], "benchmark", "benchmark"),
])
def test_every_command_that_logs_to_wandb_names_its_job_type(command, overrides, job_type, group, tmp_path):
    cfg = compose_config(command, [*overrides, "data.root=/data", f"paths.output_dir={tmp_path}"])
    assert (cfg.logger.wandb.job_type, cfg.logger.wandb.group) == (job_type, group)


def test_a_file_that_is_not_a_run_log_is_refused(tmp_path):
    fake = tmp_path / "run-fake.wandb"
    fake.write_bytes(b"not a run log")
    with pytest.raises(ValueError, match="run-fake.wandb is not a W&B run log"):
        read_run(fake)
