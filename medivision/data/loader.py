"""Loaders that Lightning can resume in the middle of an epoch."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader


class PassPosition:
    """How far a loader has got in its current pass, for checkpoints; and where a resumed pass starts.

    Lightning stores `state_dict()` (the sampler's epoch and the batches handed out so far in it) in every
    checkpoint and, when a run resumes, calls `load_state_dict` before training starts again: if the next
    pass is over that same epoch, it skips those batches; a checkpoint from the end of an epoch is followed
    by a new epoch, which starts from its first batch.
    """

    def __init__(self) -> None:
        self.epoch: int | None = None
        self.served = 0
        self._resume: dict[str, Any] = {}

    def start(self, epoch: int | None) -> int:
        """Begin a pass over `epoch`; returns how many of its batches to skip (0 unless resuming in it)."""
        skip = int(self._resume.get("served", 0)) if self._resume.get("epoch") == epoch else 0
        self._resume = {}
        self.epoch, self.served = epoch, skip
        return skip

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "served": self.served}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = dict(state_dict)


class ResumableLoader(DataLoader):
    """A DataLoader whose position in the epoch is saved in checkpoints (see PassPosition).

    With a sampler whose order depends only on its seed and the epoch (DistributedSampler, whose epoch
    Lightning sets before each pass), the resumed epoch trains on exactly the batches the interrupted one
    had left. Skipping reads the skipped batches (cheap: the data set is in memory) so any sampler and
    worker setting works.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.position = PassPosition()

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        # Runs at the first batch, after Lightning has set the sampler's epoch for this pass.
        skip = self.position.start(getattr(self.sampler, "epoch", None))
        for _ in itertools.islice(batches, skip):
            pass
        for batch in batches:
            self.position.served += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return self.position.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.position.load_state_dict(state_dict)
