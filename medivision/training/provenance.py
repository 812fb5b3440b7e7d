"""Where a trained model came from, saved in every checkpoint: the command, the code's commit and the data."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import lightning as L

# The checkpoint key the provenance is saved under.
PROVENANCE = "provenance"


def source_commit() -> str:
    """The git commit of the code that runs ("<sha>", "+dirty" appended when tracked files have changes), or
    "unknown" outside a git checkout (an installed wheel)."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


class Provenance(L.Callback):
    """Adds checkpoint["provenance"] = {"command", "commit", "data"} to every checkpoint saved: the training
    command line (`python -m medivision.train` and its overrides), source_commit() at the start of training and
    the data config (source, degradation, contrasts, ...), so an exported model can say how it was made."""

    def __init__(self, overrides: list[str], data: dict[str, Any]) -> None:
        self.record = {
            "command": " ".join(["python -m medivision.train", *overrides]),
            "commit": source_commit(),
            "data": data,
        }

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[PROVENANCE] = self.record
