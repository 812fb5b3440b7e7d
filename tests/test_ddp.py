"""Two-process DDP on the CPU (gloo), run as a real subprocess, against one process on the same data."""

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
from hydra.utils import instantiate

from medivision.inference.checkpoints import load_checkpoint
from medivision.report.wandb_files import find_run_logs, read_run
from tests.training import REPO, compose_train, tiny

SINGLE_PROCESS_ONLY = ("trainer=cpu", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1")


def ddp_overrides(data_root: Path, out: Path) -> list[str]:
    """A tiny run on two gloo processes with the whole (odd-sized) validation and test splits in batches of 2."""
    overrides = [o for o in tiny(data_root, out) if o not in SINGLE_PROCESS_ONLY and not o.startswith("paths.")]
    return [*overrides, "trainer=ddp_cpu", "data.batch_size=2", "data.val_fraction=0.25", "test=true",
            "logger=wandb", f"hydra.run.dir={out}"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")  # validation only: no callbacks needed
def test_two_process_ddp_matches_one_process_validation(kaggle_root, tmp_path):
    out = tmp_path / "run"
    overrides = ddp_overrides(kaggle_root, out)
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    result = subprocess.run([sys.executable, "-m", "medivision.train", *overrides], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    # one output directory (rank 1 logged into it too), one checkpoint, one W&B run
    assert (out / "train_ddp_process_1.log").is_file()
    checkpoints = sorted(path.name for path in (out / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and "last.ckpt" in checkpoints, checkpoints
    logs = find_run_logs(out)
    assert len(logs) == 1, logs
    history = read_run(logs[0])["history"]
    ddp_val = [row for row in history if "val/psnr" in row][-1]  # validate() of the best checkpoint

    # the same data and checkpoint, validated by one process
    cfg = compose_train([o for o in overrides if not o.startswith(("trainer=", "hydra.", "logger="))]
                        + ["trainer=cpu", "logger=none", f"paths.output_dir={tmp_path / 'single'}"])
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    assert len(datamodule.val_set) % 2 == 1 and len(datamodule.val_set) > 4  # ranks get 2 and 1 batches
    best = out / "checkpoints" / next(name for name in checkpoints if name != "last.ckpt")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    single = trainer.validate(instantiate(cfg.model), datamodule=datamodule, ckpt_path=str(best))[0]

    # the per-image test table holds every test image once, gathered from both processes
    (table,) = [row for row in history if "test/per_image._type" in row]
    assert table["test/per_image.nrows"] == len(datamodule.test_set) and len(datamodule.test_set) % 2 == 1
    for name, tolerance in (("psnr", 1e-4), ("ssim", 1e-6), ("bicubic_psnr", 1e-4), ("bicubic_ssim", 1e-6)):
        assert ddp_val[f"val/{name}"] == pytest.approx(single[f"val/{name}"], abs=tolerance), name
    # the checkpoint's monitored score was also computed over both processes during fit
    score = load_checkpoint(best)["callbacks"]
    monitored = next(state["best_model_score"] for key, state in score.items() if "ModelCheckpoint" in key)
    assert float(monitored) == pytest.approx(single["val/psnr"], abs=1e-4)


@pytest.mark.parametrize("sweep", [["-m", "model.generator.attention=none,cbam"], ["+experiment=cbam_ablation"]])
def test_local_multirun_refuses_script_launched_ddp(sweep, kaggle_root, tmp_path):
    overrides = [o for o in ddp_overrides(kaggle_root, tmp_path) if not o.startswith("hydra.run.")]
    command = [sys.executable, "-m", "medivision.train", *sweep, *overrides, f"hydra.sweep.dir={tmp_path}"]
    result = subprocess.run(command, cwd=REPO, env={**os.environ, "WANDB_MODE": "offline"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "cannot run inside a local Hydra multirun" in result.stderr
    assert "hydra/launcher=slurm" in result.stderr
    assert not list(tmp_path.rglob("*.ckpt")) and not (tmp_path / "cache").exists()  # stopped before any data
