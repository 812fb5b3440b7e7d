"""Experiment loggers: Weights & Biases online when credentials exist, offline otherwise; CSV when W&B cannot start."""

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import wandb
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

from medivision.report.wandb_files import wait_for_exit_record, wandb_has_credentials

WANDB_MODES = ("auto", "online", "offline", "disabled")


def wandb_logger(save_dir: str, project: str, mode: str = "auto", log_model: bool | str = False,
                 **kwargs) -> WandbLogger:
    """A WandbLogger writing under `save_dir/wandb`.

    mode: auto (WANDB_MODE if set, else online with credentials and offline without), online, offline or
    disabled. Offline runs are synced later with `wandb sync <save_dir>/wandb/offline-run-*`.
    log_model: Lightning's checkpoints as W&B model artifacts (True: the best and last at the end of training;
    "all": every checkpoint as it is written), online runs only (see checkpoint_artifacts).
    Other keyword arguments (group, name, tags, job_type, ...) go to `wandb.init`.
    """
    if mode not in WANDB_MODES:
        raise ValueError(f"logger.wandb.mode={mode!r} is not one of {', '.join(WANDB_MODES)}")
    if mode == "auto":
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_has_credentials() else "offline")
    os.makedirs(save_dir, exist_ok=True)
    if not os.access(save_dir, os.W_OK):
        raise PermissionError(f"logger.wandb.save_dir={save_dir} is not writable")
    logger = WandbLogger(project=project, save_dir=save_dir, mode=mode, offline=mode == "offline",
                         log_model=checkpoint_artifacts(mode, log_model), **kwargs)
    # Lightning always passes wandb.init an `anonymous` setting, which W&B warns has no effect: leave it out.
    getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    return logger


def checkpoint_artifacts(mode: str, log_model: bool | str) -> bool | str:
    """WandbLogger's log_model for a run in `mode` (online, offline or disabled): `log_model` online, off
    otherwise. An offline run cannot upload artifacts (Lightning refuses log_model with offline=True), and
    `wandb sync` uploads the run's log, not files the run never logged; the checkpoints stay in the run
    directory."""
    return log_model if mode == "online" else False


def make_loggers(configs: Mapping | None, fallback_dir: str) -> list[Logger]:
    """The configured loggers (`cfg.logger`); a W&B logger whose config fails is replaced by a CSVLogger.

    Logging is not worth losing a training run over: a bad W&B mode or save directory gives one warning
    and CSV files under `fallback_dir`/csv. Any other logger's error is raised.
    """
    loggers = []
    for config in (configs or {}).values():
        try:
            loggers.append(instantiate(config))
        except Exception as error:
            if not _is_wandb(config):
                raise
            loggers.append(_csv_instead(error, fallback_dir))
    return loggers


def start_loggers(loggers: list[Logger], hyperparameters: dict, fallback_dir: str) -> list[Logger]:
    """Log `hyperparameters` to every logger, which starts W&B's run; a W&B run that fails to start (no
    credentials for online mode, a W&B service that does not come up, ...) is replaced by a CSVLogger with
    one warning, so training goes on. Returns the loggers to train with."""
    started = []
    for logger in loggers:
        try:
            logger.log_hyperparams(hyperparameters)
        except Exception as error:
            if not isinstance(logger, WandbLogger):
                raise
            logger = _csv_instead(error, fallback_dir)
            logger.log_hyperparams(hyperparameters)
        started.append(logger)
    return started


def _is_wandb(config: Mapping) -> bool:
    return "wandb" in str(config.get("_target_", "")).lower()


def _csv_instead(error: Exception, fallback_dir: str) -> CSVLogger:
    error = error.__cause__ or error  # Hydra wraps what the logger raised in an InstantiationException
    reason = str(error).strip().splitlines()
    logger = CSVLogger(fallback_dir, name="csv")
    warnings.warn(f"W&B could not start ({type(error).__name__}: {reason[0] if reason else 'no message'}); "
                  f"logging to CSV in {logger.log_dir} instead and training on. Fix logger.wandb.* or pass "
                  "logger=csv.", stacklevel=2)
    return logger


def finish_run(timeout: float = 60.0) -> None:
    """`wandb.finish()`, then wait until the run's log file holds its exit record; never raises.

    wandb.finish() can return before W&B's service has written the log to disk (seen offline, on a busy
    machine), and a tool reading the run right afterwards would find an empty file. This runs in the
    `finally` of every command that logs to W&B: a failure here is one warning, so that it neither fails a
    run that went well nor hides the error that stopped one.
    """
    run = wandb.run
    if run is None:
        return
    log = Path(run.dir).parent / f"run-{run.id}.wandb"
    try:
        wandb.finish()
    except Exception as error:
        warnings.warn(f"W&B could not finish the run in {log.parent} ({type(error).__name__}: {error})",
                      stacklevel=2)
        return
    if not wait_for_exit_record(log, timeout):
        warnings.warn(f"W&B has not finished writing {log} after {timeout:.0f} s", stacklevel=2)
