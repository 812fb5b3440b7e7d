"""A DataLoader that Lightning can resume in the middle of an epoch."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader


class ResumableLoader(DataLoader):
    """A DataLoader whose position in the epoch is saved in checkpoints.

    Lightning stores `state_dict()` (the sampler's epoch and the batches handed out so far in it) in every
    checkpoint and, when a run resumes, calls `load_state_dict` before training starts again: if the next
    pass is over that same epoch, it skips those batches; a checkpoint from the end of an epoch is followed
    by a new epoch, which starts from its first batch. With a sampler whose order depends only on its seed
    and the epoch (DistributedSampler, whose epoch Lightning sets before each pass), the resumed epoch trains
    on exactly the batches the interrupted one had left. Skipping reads the skipped batches (cheap: the data
    set is in memory) so any sampler and worker setting works.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epoch: int | None = None
        self._served = 0
        self._resume: dict[str, Any] = {}

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        # Runs at the first batch, after Lightning has set the sampler's epoch for this pass.
        epoch = getattr(self.sampler, "epoch", None)
        skip = int(self._resume.get("served", 0)) if self._resume.get("epoch") == epoch else 0
        self._resume = {}
        self._epoch, self._served = epoch, skip
        for _ in itertools.islice(batches, skip):
            pass
        for batch in batches:
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self._epoch, "served": self._served}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = dict(state_dict)
