"""Skipping training batches whose loss is NaN/Inf, decided on the device so that no step waits for it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

LOSS_NAMES = ("d_loss", "g_loss")  # which loss went bad, by code 1, 2 (0: none yet)


class TrainingDiverged(RuntimeError):
    """Too many training batches in a row had a non-finite loss; the message says what to do."""


class BadSteps(nn.Module):
    """Counts of skipped batches, kept as device tensors and read by the host only in `check`.

    A batch is bad when its discriminator or generator loss is not finite on some process. Its updates are
    skipped without the host waiting for the device: fused optimizers (Adam, AdamW, SGD, Adagrad with
    fused=True) take a `found_inf` flag and leave weights and state as they were, and `restore` puts the
    networks' buffers back with torch.where. Other optimizers make the host read the flag (one wait per
    step). The host reads the counts only when `check` runs (at logging steps and at the epoch's end).
    """

    def __init__(self, max_bad_steps: int) -> None:
        super().__init__()
        if max_bad_steps < 1:
            raise ValueError(f"max_bad_steps={max_bad_steps} must be at least 1")
        self.max_in_a_row = max_bad_steps
        for name in ("skipped", "in_a_row", "worst_run", "run_start", "loss_code"):
            self.register_buffer(name, torch.zeros((), dtype=torch.long), persistent=False)
        self.reported = 0  # skipped batches already warned about

    def restore(self, ok: Tensor, buffers: Sequence[Tensor], before: Sequence[Tensor]) -> None:
        """Where the batch is bad, put `buffers` back to `before` (BatchNorm statistics, spectral-norm vectors)."""
        for buffer, saved in zip(buffers, before):
            buffer.copy_(torch.where(ok, buffer, saved))

    def record(self, d_ok: Tensor, g_ok: Tensor, global_step: int) -> None:
        """Count the batch: bad when either flag is False (bool tensors, the same on every process)."""
        ok = d_ok & g_ok
        self.skipped += (~ok).long()
        self.in_a_row.copy_(torch.where(ok, 0, self.in_a_row + 1))
        self.worst_run.copy_(torch.maximum(self.worst_run, self.in_a_row))
        self.run_start.copy_(torch.where(self.in_a_row == 1, global_step, self.run_start))
        self.loss_code.copy_(torch.where(~d_ok, 1, torch.where(~g_ok, 2, self.loss_code)))

    def check(self, epoch: int, last_checkpoint: str) -> None:
        """Warn about batches skipped since the last check; raise TrainingDiverged if some run of bad batches
        since then reached max_in_a_row. Reads the counts (waits for the device)."""
        skipped, worst = int(self.skipped), int(self.worst_run)
        if skipped > self.reported:
            log.warning("training batches skipped for a non-finite loss: %d since the last check, %d in the run",
                        skipped - self.reported, skipped)
            self.reported = skipped
        self.worst_run.copy_(self.in_a_row)
        if worst < self.max_in_a_row:
            return
        name = LOSS_NAMES[int(self.loss_code) - 1]
        raise TrainingDiverged(
            f"training stopped: {worst} batches in a row had a non-finite loss ({name} is NaN or Inf; epoch "
            f"{epoch}, from global step {int(self.run_start)}); their updates were skipped, so no weights were "
            f"changed by them. Last checkpoint: {last_checkpoint or 'none written yet'}. Lower the learning "
            "rates (model.optimizer_g.lr, model.optimizer_d.lr), set model.gradient_clip, or check the data, "
            "then resume with ckpt_path=<that checkpoint> (model.max_bad_steps sets the limit)"
        )

    def state(self) -> dict[str, int]:
        """What checkpoints keep: all skipped batches and the current run of bad ones."""
        return {"skipped_steps": int(self.skipped), "bad_steps": int(self.in_a_row)}

    def load_state(self, checkpoint: dict) -> None:
        self.skipped.fill_(checkpoint.get("skipped_steps", 0))
        self.in_a_row.fill_(checkpoint.get("bad_steps", 0))
        self.worst_run.copy_(self.in_a_row)
        self.reported = int(self.skipped)


def finite(loss: Tensor) -> Tensor:
    """bool [] on the loss's device: whether every element of `loss` is finite."""
    return torch.isfinite(loss).all()


def step_unless(optimizer: torch.optim.Optimizer, step, bad: Tensor) -> None:
    """Run `step()` (the optimizer's, or Lightning's wrapper of it) unless `bad` (bool [] tensor).

    Fused optimizers skip on the device (their `found_inf`, as PyTorch's GradScaler uses it); any other
    optimizer makes the host read `bad` first.
    """
    if getattr(optimizer, "_step_supports_amp_scaling", False):
        optimizer.found_inf = bad.float()
        try:
            step()
        finally:
            del optimizer.found_inf
    elif not bool(bad):
        step()
