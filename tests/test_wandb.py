"""What a training run logs to W&B, read back from real offline runs with W&B's own reader (wandb leet inspect)."""

import json
import shutil
import statistics
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import wandb
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger

from medivision.report import wandb_files
from medivision.report.runs import load_runs
from medivision.report.wandb_files import (
    find_run_logs,
    iter_records,
    read_records,
    read_run,
    run_group,
    wait_for_exit_record,
)
from medivision.train import train
from medivision.training.callbacks import NUMBERS, TABLE_COLUMNS, PerImageTestTable, unique_rows
from medivision.training.loggers import checkpoint_artifacts, finish_run
from tests.clinic import compose_config
from tests.training import compose_train, tiny


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_offline_training_run_holds_job_type_learning_rates_panels_and_the_per_image_test_table(kaggle_root,
                                                                                                 tmp_path, wandb_dirs,
                                                                                                 capsys):
    cfg = compose_train(tiny(kaggle_root, tmp_path, "group=unit", "run_name=tiny", "trainer.max_epochs=2",
                             "model.pretrain_epochs=0", "model.lr_milestones=[1]", "model.lr_gamma=0.5",
                             "trainer.log_every_n_steps=1"))
    train(cfg)
    (log,) = find_run_logs(tmp_path / "wandb")
    # the run ends with what to do next, each a command that names this run's real folders and files
    printed = capsys.readouterr().out.split("\nnext:\n")[1]
    steps = [line.split("#")[0].split() for line in printed.splitlines()]
    assert steps[0] == ["python", "-m", "medivision.compare", str(tmp_path)]
    assert steps[1] == ["wandb", "leet", str(log.parent)]
    assert steps[2][:3] == ["python", "-m", "medivision.enhance"] and Path(steps[2][3][len("ckpt="):]).is_file()
    assert steps[3] == ["wandb", "sync", str(log.parent)]
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

    # the table's images (in its W&B table artifact, the run's files hold placeholders) have captions; offline,
    # no checkpoint artifact is made; the artifact is staged in the W&B data folder of conftest.wandb_dirs
    artifacts = [record["artifact"] for record in read_records(log) if record["type"] == "artifact"]
    assert [artifact["type"] for artifact in artifacts] == ["run_table"]
    staged = {entry["path"]: Path(entry["local_path"]) for entry in artifacts[0]["manifest"]["contents"]}
    assert all(path.is_relative_to(wandb_dirs) for path in staged.values()), staged
    full = json.loads(staged["test/per_image.table.json"].read_text())
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


@pytest.fixture(scope="module")
def run_log(tmp_path_factory, wandb_dirs) -> Path:
    """The log of a real, finished offline W&B run in the group `unit`, with one history row."""
    folder = tmp_path_factory.mktemp("one_run")
    run = wandb.init(dir=folder, project="unit", group="unit", mode="offline", config={"seed": 1},
                     settings=wandb.Settings(silent=True))
    run.log({"val/psnr": 30.0})
    run.finish()
    (log,) = find_run_logs(folder)
    return log


def test_an_empty_or_partly_written_log_is_a_run_not_yet_finished(run_log, tmp_path):
    assert wait_for_exit_record(run_log, 30)
    empty, prefix = tmp_path / "run-empty.wandb", tmp_path / "run-prefix.wandb"
    empty.write_bytes(b"")
    prefix.write_bytes(run_log.read_bytes()[:10])
    started = time.monotonic()
    assert not wait_for_exit_record(empty, 1) and not wait_for_exit_record(prefix, 1)
    assert not wait_for_exit_record(tmp_path / "run-never.wandb", 0.5)
    assert time.monotonic() - started < 15

    # a log written while it is waited for: followed until its exit record comes
    growing, whole = tmp_path / "run-growing.wandb", run_log.read_bytes()
    growing.write_bytes(whole[: len(whole) // 2])
    rest = threading.Timer(1.0, lambda: growing.open("ab").write(whole[len(whole) // 2:]))
    rest.start()
    assert wait_for_exit_record(growing, 30)
    rest.join()


def test_finishing_a_run_warns_instead_of_raising(monkeypatch, tmp_path):
    # finish_run runs in a `finally`: raising there would fail a good run or hide the error of a failed one
    monkeypatch.setattr(wandb, "run", SimpleNamespace(dir=str(tmp_path / "files"), id="x"))
    monkeypatch.setattr(wandb, "finish", lambda: (_ for _ in ()).throw(RuntimeError("service gone")))
    with pytest.warns(UserWarning, match="could not finish the run .*service gone"):
        finish_run()
    monkeypatch.setattr(wandb, "finish", lambda: None)
    (tmp_path / "run-x.wandb").write_bytes(b"")
    with pytest.warns(UserWarning, match="has not finished writing .*run-x.wandb"):
        finish_run(timeout=1)


@pytest.mark.parametrize("tool, message", [
    (("-c", "print('{\"type\": \"header\"}'); print('{oops')"), "line 2 of `wandb leet inspect --json` is not JSON"),
    (("-c", "import time; time.sleep(60)"), "did not finish reading it within 1 s"),
])
def test_a_failing_reader_is_one_error_naming_the_log(tool, message, monkeypatch, tmp_path):
    monkeypatch.setattr(wandb_files, "LEET_INSPECT", tool)
    log = tmp_path / "run-x.wandb"
    with pytest.raises(ValueError, match=message) as error:
        list(iter_records(log, timeout=1))
    assert str(log) in str(error.value)


def test_a_wandb_without_leet_inspect_names_the_version_needed(monkeypatch, tmp_path):
    monkeypatch.setattr(wandb_files, "LEET_INSPECT", ("-m", "wandb", "no-such-command"))
    with pytest.raises(ValueError, match=r"needs wandb>=0\.31 \(`wandb leet inspect --json`\); wandb \S+ is "):
        read_run(tmp_path / "run-x.wandb")


def test_the_group_is_read_from_the_start_of_the_log_only(monkeypatch, tmp_path):
    header, run = json.dumps({"type": "header"}), json.dumps({"type": "run", "run": {"run_group": "unit"}})
    script = f"import sys, time; print({header!r}); print({run!r}); sys.stdout.flush(); time.sleep(60)"
    monkeypatch.setattr(wandb_files, "LEET_INSPECT", ("-c", script))
    started = time.monotonic()
    assert run_group(tmp_path / "run-x.wandb") == "unit"
    assert time.monotonic() - started < 10  # it stopped reading, and the tool, at the run record


def test_a_group_is_found_past_unreadable_logs(run_log, tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "broken").mkdir()
    shutil.copy(run_log, tmp_path / "good" / run_log.name)
    (tmp_path / "broken" / "run-broken.wandb").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"skipped 1 of 2 W&B run logs under .*/run-broken.wandb is not a W&B"):
        runs = load_runs("unit", runs_root=tmp_path)
    assert [run["group"] for run in runs] == ["unit"] and runs[0]["history"][0]["val/psnr"] == 30.0


def test_the_test_table_keeps_each_image_index_exact_and_once(tmp_path):
    callback, big = PerImageTestTable(), 2**24 + 1  # float32 holds integers exactly up to 2**24 only
    trainer = SimpleNamespace(loggers=[WandbLogger(save_dir=str(tmp_path), offline=True)])
    callback.on_test_epoch_start(trainer, SimpleNamespace(device=torch.device("cpu")))
    images = torch.rand(3, 1, 32, 32)
    batch = {"hr": images, "index": torch.tensor([big, 3, big])}  # a DistributedSampler's padding repeats one
    callback.on_test_batch_end(trainer, None, {"sr": images, "bicubic": images}, batch, 0)
    values = {name: metric.compute().tolist() for name, metric in callback.values.items()}
    assert sorted(unique_rows(values)) == [3, big]
