"""The attention ablation as a real Hydra multirun in a subprocess, logging real offline W&B runs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from medivision.wandb_log import find_run_logs, read_run
from tests.training import tiny

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cbam_ablation_runs_four_variants_as_grouped_wandb_runs(kaggle_root, tmp_path):
    command = [sys.executable, "-m", "medivision.train", "+experiment=cbam_ablation",
               *tiny(kaggle_root, tmp_path / "sweep", "model.loss.perceptual.weights=random", multirun=True)]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    runs = [read_run(log) for log in find_run_logs(tmp_path / "sweep")]
    assert sorted(run["name"] for run in runs) == [
        "attention=cbam", "attention=channel", "attention=none", "attention=spatial"]
    assert {run["group"] for run in runs} == {"cbam_ablation"}
    assert len({run["id"] for run in runs}) == 4
    for run in runs:
        logged = {key for row in run["history"] for key in row}
        assert {"val/psnr", "val/ssim", "val/bicubic_psnr", "val/bicubic_ssim"} <= logged
        assert any(key.startswith("val/samples") for key in logged)
        assert run["config"]["model"]["generator"]["attention"] == run["name"].split("=")[1]
    job_dirs = sorted(path.name for path in (tmp_path / "sweep").glob("*_attention=*"))
    assert len(job_dirs) == 4 and all((tmp_path / "sweep" / d / "checkpoints" / "last.ckpt").is_file()
                                      for d in job_dirs)
