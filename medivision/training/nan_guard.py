"""The NaN guard: a training batch whose loss is NaN/Inf changes nothing, is counted, and a run of them stops
training, without the host waiting for the device."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

LOSS_NAMES = ("d_loss", "g_loss")  # which loss went bad, by code 1, 2 (0: none yet)


class TrainingDiverged(RuntimeError):
    """Too many training batches in a row had a non-finite loss; the message says what to do."""


class NaNGuard(nn.Module):
    """Skips the updates of a training batch whose loss is not finite, counts it, and stops a run of them.

    How a LightningModule with manual optimization uses it:

        guard.start_batch(buffers, global_step)    # before the forward passes of a training batch
        self.manual_backward(guard.scale(loss, *earlier_losses))  # per optimizer: backward, then optimizer.step(),
        guard.step(optimizer)                      #   and in on_before_optimizer_step(optimizer): clip, the update
        ok = guard.end_batch(losses, reduce)       # after the steps: bool [] on the device, False for a bad batch
        guard.check(trainer)                       # now and then (reads the counts; raises TrainingDiverged)

    Skipping: an update whose gradients are not finite is skipped by torch.amp.GradScaler. Under 16-mixed it is
    Lightning's own scaler, which steps right after on_before_optimizer_step; under every other precision the
    guard's own, kept at scale 1 so that it changes no number, steps in that hook: callbacks have seen the
    gradients by then, and the optimizer's own update that follows finds none left. With a fused optimizer
    (Adam, AdamW, SGD with fused=True) the scaler skips on the device; other optimizers make the host read its
    flag once per step. Lightning counts every step, skipped or not, in global_step.

    A batch is bad when one of its losses is not finite on some process. Its updates are all skipped: a
    non-finite loss gives non-finite gradients, and `scale` turns a later loss NaN when an earlier one of the
    batch was not finite (the generator's after a bad discriminator loss). The buffers forward passes changed
    (BatchNorm statistics, spectral-norm vectors) go back to their values from before the batch (torch.where,
    on the device), and `end_batch` returns False so the caller can hold its EMA. Finite losses whose
    gradients overflow (float16) are skipped by the scaler as in any mixed-precision run, and not counted.

    Counting: device tensors, read by the host only in `check` and `state`.
    """

    def __init__(self, max_bad_steps: int) -> None:
        super().__init__()
        if max_bad_steps < 1:
            raise ValueError(f"max_bad_steps={max_bad_steps} must be at least 1")
        self.max_in_a_row = max_bad_steps
        for name in ("skipped", "in_a_row", "worst_run", "run_start", "loss_code"):
            self.register_buffer(name, torch.zeros((), dtype=torch.long), persistent=False)
        self.reported = 0  # skipped batches already warned about
        self.scaler: torch.amp.GradScaler | None = None
        self._watched: list[Tensor] = []
        self._saved: list[Tensor] = []
        self._global_step = 0

    @staticmethod
    def check_precision(trainer: L.Trainer) -> None:
        """Refuse float16 weights (16-true): GradScaler cannot check their gradients."""
        if str(trainer.precision) == "16-true":
            raise ValueError("trainer.precision=16-true keeps float16 weights, whose non-finite updates the NaN guard "
                             "cannot skip: use trainer.precision=16-mixed or bf16-mixed")

    def setup(self, trainer: L.Trainer, device: torch.device) -> None:
        """Use Lightning's GradScaler when the precision has one (16-mixed), else one of our own at scale 1."""
        lightning_scaler = getattr(trainer.precision_plugin, "scaler", None)
        self.scaler = None if lightning_scaler is not None else torch.amp.GradScaler(device.type, init_scale=1.0)

    def start_batch(self, buffers: Sequence[Tensor], global_step: int) -> None:
        """Remember `buffers` (device copies of a few small tensors; no sync) and the step the batch starts at."""
        self._global_step = global_step
        self._watched = list(buffers)
        self._saved = [buffer.clone() for buffer in self._watched]

    def scale(self, loss: Tensor, *earlier: Tensor) -> Tensor:
        """The loss to back-propagate: unchanged in value (scale 1, or Lightning's scaler scales it itself) when
        the `earlier` losses of the batch are finite, NaN (so that this update is skipped too) when one is not."""
        for other in earlier:
            loss = loss * torch.where(torch.isfinite(other.detach()), 1.0, float("nan"))
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The update of `optimizer` (the torch optimizer Lightning passes to on_before_optimizer_step), skipped
        when its gradients are not finite. Under 16-mixed Lightning's scaler makes it instead, right after."""
        if self.scaler is None:
            return
        self.scaler.step(optimizer)
        self.scaler.update(1.0)
        optimizer.zero_grad(set_to_none=True)  # the update is made: optimizer.step() goes on and finds no gradients

    def end_batch(self, losses: dict[str, Tensor], reduce: Callable[..., Tensor]) -> Tensor:
        """bool [] on the device: whether every loss of the batch was finite on every process (`reduce`: the
        strategy's, one all-reduce of two flags under DDP). A bad batch has its buffers put back and is counted."""
        g_loss = losses["g_loss"]
        d_loss = losses.get("d_loss", g_loss.new_zeros(()))
        finite = torch.stack([torch.isfinite(d_loss).all(), torch.isfinite(g_loss).all()])
        d_ok, g_ok = reduce(finite.float(), reduce_op="min").bool()
        ok = d_ok & g_ok
        for buffer, saved in zip(self._watched, self._saved):
            buffer.copy_(torch.where(ok, buffer, saved))
        self._watched, self._saved = [], []
        self.skipped += (~ok).long()
        self.in_a_row.copy_(torch.where(ok, 0, self.in_a_row + 1))
        self.worst_run.copy_(torch.maximum(self.worst_run, self.in_a_row))
        self.run_start.copy_(torch.where(self.in_a_row == 1, self._global_step, self.run_start))
        self.loss_code.copy_(torch.where(~d_ok, 1, torch.where(~g_ok, 2, self.loss_code)))
        return ok

    def check(self, trainer: L.Trainer) -> None:
        """Warn about batches skipped since the last check; raise TrainingDiverged if some run of bad batches
        since then reached max_bad_steps. Reads the counts (waits for the device)."""
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
            f"{trainer.current_epoch}, from global step {int(self.run_start)}); their updates were skipped, so no "
            f"weights were changed by them. Last checkpoint: {_last_checkpoint(trainer) or 'none written yet'}. "
            "Lower the learning rates (model.optimizer_g.lr, model.optimizer_d.lr), set model.gradient_clip, or "
            "check the data, then resume with ckpt_path=<that checkpoint> (model.max_bad_steps sets the limit)"
        )

    def state(self) -> dict[str, int]:
        """What checkpoints keep: all skipped batches and the current run of bad ones."""
        return {"skipped_steps": int(self.skipped), "bad_steps": int(self.in_a_row)}

    def load_state(self, checkpoint: dict) -> None:
        self.skipped.fill_(checkpoint.get("skipped_steps", 0))
        self.in_a_row.fill_(checkpoint.get("bad_steps", 0))
        self.worst_run.copy_(self.in_a_row)
        self.reported = int(self.skipped)


def _last_checkpoint(trainer: L.Trainer) -> str:
    """The newest checkpoint file the run's checkpoint callbacks wrote, or ""."""
    paths = [path for callback in trainer.checkpoint_callbacks
             for path in (callback.last_model_path, callback.best_model_path)]
    written = [path for path in paths if path and Path(path).is_file()]
    return max(written, key=lambda path: Path(path).stat().st_mtime_ns, default="")
