"""Batches cut from a split that lives whole on the accelerator: no worker processes, no per-batch copies."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Sampler

from medivision.data.dataset import HRDataset
from medivision.data.loader import PassPosition


class DeviceBatches:
    """Iterates over one split held on `device`, yielding the batches a DataLoader with the same sampler would.

    Each batch is {"hr": uint8 [B, 1, H, W] in [0, 255], "label": int64 [B], "index": int64 [B]}, all
    already on `device`, gathered there with one index_select per tensor: the host only launches kernels,
    and never waits for the device. A 128x128 uint8 split of 5,712 images takes 94 MB.

    sampler: the item order of a pass (None: in order), the same object the DataLoader would get, so the
    training order and DDP shares are the DataLoader's; Lightning sets its epoch (`set_epoch`) before
    each pass. The order is copied to the device once per pass. drop_last: drop the ragged last batch.
    The position in the pass is saved in checkpoints and resumed as ResumableLoader does (PassPosition).
    """

    def __init__(
        self,
        dataset: HRDataset,
        device: torch.device,
        batch_size: int,
        sampler: Sampler[int] | None = None,
        drop_last: bool = False,
    ) -> None:
        self.hr = dataset.hr.to(device)
        self.labels = dataset.labels.to(device)
        self.rows = dataset.rows.to(device)
        self.batch_size = batch_size
        self.sampler = sampler
        self.batch_sampler = None  # batches are cut here; Lightning looks for this next to `sampler`
        self.drop_last = drop_last
        self.position = PassPosition()

    def __len__(self) -> int:
        items = len(self.sampler) if self.sampler is not None else len(self.labels)
        return items // self.batch_size if self.drop_last else math.ceil(items / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        order = torch.as_tensor(list(self.sampler) if self.sampler is not None else range(len(self.labels)))
        order = order.to(self.hr.device, non_blocking=True)
        skip = self.position.start(getattr(self.sampler, "epoch", None))
        for start in range(skip * self.batch_size, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            self.position.served += 1
            yield {
                "hr": self.hr.index_select(0, index),
                "label": self.labels.index_select(0, index),
                "index": self.rows.index_select(0, index),
            }

    def state_dict(self) -> dict[str, Any]:
        return self.position.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.position.load_state_dict(state_dict)
