"""A DataLoader that Lightning can resume in the middle of an epoch."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader


class ResumableLoader(DataLoader):
    """A DataLoader whose position in the epoch is saved in checkpoints.

    Lightning stores `state_dict()` (the batches handed out so far this epoch) in every checkpoint and,
    when a run resumes from a mid-epoch checkpoint, calls `load_state_dict` before the epoch starts again:
    the next pass then skips those batches. With a sampler whose order depends only on its seed and the
    epoch (DistributedSampler, whose epoch Lightning sets before each pass), the resumed epoch trains on
    exactly the batches the interrupted one had left. Skipping reads the skipped batches (cheap: the
    data set is in memory) so any sampler and worker setting works.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._served = 0
        self._skip = 0

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        skip, self._skip = self._skip, 0
        for _ in itertools.islice(batches, skip):
            pass
        self._served = skip
        for batch in batches:
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"served": self._served}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._skip = int(state_dict["served"])
