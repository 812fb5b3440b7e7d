"""Hyperparameter sweeps: Hydra's Optuna sweeper for real, W&B sweep files, the SLURM launcher config."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

from medivision.training.module import SRModule
from tests.training import CONF_DIR, REPO, compose_train, tiny

SEARCHED = {"model.optimizer_g.lr", "model.optimizer_d.lr", "model.loss.perceptual.weight",
            "model.loss.adversarial.weight"}
SWEEP_FILES = sorted((REPO / "experiments" / "sweeps").glob("*.yaml"))


@pytest.mark.slow
def test_optuna_search_runs_three_trials_and_reports_the_best(kaggle_root, tmp_path):
    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "medivision.train", "hparams_search=optuna", "hydra.sweeper.n_trials=3",
               "hydra.sweeper.sampler.n_startup_trials=2", "logger=csv", "test=false",
               *tiny(kaggle_root, sweep, multirun=True)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    trials = sorted(path for path in sweep.iterdir() if path.name.isdigit())
    assert [path.name for path in trials] == ["0", "1", "2"]
    returned = []
    for trial in trials:
        overrides = yaml.safe_load((trial / ".hydra" / "overrides.yaml").read_text())
        sampled = dict(o.split("=", 1) for o in overrides if o.split("=", 1)[0] in SEARCHED)
        assert set(sampled) == SEARCHED
        assert 1e-5 <= float(sampled["model.optimizer_g.lr"]) <= 1e-3
        metrics = (next(trial.glob("csv/version_*/metrics.csv"))).read_text().splitlines()
        header = metrics[0].split(",")
        column = header.index("val/psnr")
        # the last val/psnr row is validate() of the best checkpoint: what train() returns to the sweeper
        returned.append([float(row.split(",")[column]) for row in metrics[1:] if row.split(",")[column]][-1])
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(max(returned))
    assert set(results["best_params"]) == SEARCHED


def test_optuna_search_composes_with_an_experiment():
    cfg = compose_train(["+experiment=demo", "hparams_search=optuna", "optimized_metric=val/ssim"])
    assert cfg.optimized_metric == "val/ssim" and cfg.data.source == "mni152"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra_cfg = compose("train", overrides=["hparams_search=optuna"], return_hydra_config=True).hydra
    assert hydra_cfg.sweeper._target_.endswith("OptunaSweeper") and hydra_cfg.sweeper.direction == "maximize"


def agent_command(sweep_file: Path) -> list[str]:
    """The command a W&B agent would run for the sweep's first grid point / lower bounds, as W&B builds it."""
    sweep = yaml.safe_load(sweep_file.read_text())
    values = {}
    for name, spec in sweep["parameters"].items():
        values[name] = {"value": spec["values"][0] if "values" in spec else spec.get("value", spec.get("min"))}
    macros = {**create_sweep_command_args({"args": values}), "env": [], "interpreter": [sys.executable],
              "program": [sweep["program"]]}
    command = []
    for part in create_sweep_command(list(sweep["command"])):
        command += macros[part[2:-1]] if part.startswith("${") else [part]
    return command


@pytest.mark.parametrize("sweep_file", SWEEP_FILES, ids=[path.stem for path in SWEEP_FILES])
def test_wandb_sweep_file_drives_the_hydra_entry_point(sweep_file, kaggle_root, tmp_path):
    sweep = yaml.safe_load(sweep_file.read_text())
    assert "${args_no_hyphens}" in sweep["command"] and sweep["metric"]["name"] in {"val/psnr", "val/ssim"}
    assert (REPO / sweep["program"]).is_file()
    command = agent_command(sweep_file)
    assert command[1:3] == ["-m", "medivision.train"]
    overrides = command[3:]
    cfg = compose_train([*overrides, f"data.root={kaggle_root}", f"paths.output_dir={tmp_path}",
                         "model.loss.perceptual.weights=random"])
    for override in overrides:
        key, value = override.split("=", 1)
        assert str(OmegaConf.select(cfg, key)) == value, override
    assert isinstance(instantiate(cfg.model), SRModule)


def test_slurm_launcher_asks_for_one_task_per_gpu_on_every_node(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4",
                                          "trainer.num_nodes=2", "hydra.launcher.partition=gpu",
                                          f"hydra.sweep.dir={tmp_path}"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)

    # submitit checks that srun exists before it writes anything; nothing is submitted here
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    assert shutil.which("srun")
    # the same parameter mapping as hydra_submitit_launcher's SlurmLauncher.launch
    params = OmegaConf.to_container(launcher, resolve=True)
    executor = submitit.AutoExecutor(cluster="slurm", folder=tmp_path / "submitit",
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{key if key in base else f"slurm_{key}": value for key, value in params.items()
                                  if key not in ("submitit_folder", "_target_")})
    script = executor._executor._make_submission_file_text("python -m medivision.train", "job")
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --partition=gpu"):
        assert line in script
