"""Experiment loggers: Weights & Biases online when credentials exist, offline otherwise."""

import netrc
import os

from lightning.pytorch.loggers import WandbLogger

WANDB_MODES = ("auto", "online", "offline", "disabled")


def wandb_has_credentials() -> bool:
    """True when WANDB_API_KEY is set or ~/.netrc holds a key for api.wandb.ai (as `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(save_dir: str, project: str, mode: str = "auto", **kwargs) -> WandbLogger:
    """A WandbLogger writing under `save_dir/wandb`.

    mode: auto (WANDB_MODE if set, else online with credentials and offline without), online, offline or
    disabled. Offline runs are synced later with `wandb sync <save_dir>/wandb/offline-run-*`.
    Other keyword arguments (group, name, tags, job_type, ...) go to `wandb.init`.
    """
    if mode not in WANDB_MODES:
        raise ValueError(f"logger.wandb.mode={mode!r} is not one of {', '.join(WANDB_MODES)}")
    if mode == "auto":
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_has_credentials() else "offline")
    os.makedirs(save_dir, exist_ok=True)
    return WandbLogger(project=project, save_dir=save_dir, mode=mode, offline=mode == "offline", **kwargs)
