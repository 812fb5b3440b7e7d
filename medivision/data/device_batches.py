"""Batches cut from a split that lives whole on the accelerator: no worker processes, no per-batch copies."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from medivision.data.dataset import HRDataset


class DeviceBatches:
    """Iterates over one split held on `device`, yielding the batches a DataLoader over it would.

    Each batch is {"hr": uint8 [B, 1, H, W] in [0, 255], "label": int64 [B]} (plus "eval_row" int64 [B]
    when the split has evaluation rows), all already on `device`, gathered there with one index_select per
    tensor: the host only launches kernels, and never waits for the device. A 128x128 uint8 split of
    5,712 images takes 94 MB.

    shuffle: a new order every pass, drawn from a CPU generator seeded once with `seed` (so a seeded run
    repeats its orders; they are not the orders a DataLoader with the same seed draws), and the ragged last
    batch dropped unless that would leave none, as SRDataModule's DataLoader does. Without shuffle the split
    is read in order with nothing dropped.
    Under DDP (`world_size` > 1) process `rank` takes every world_size-th item of the order; shuffled
    passes first cut the order to a multiple of world_size, so every process runs as many batches, while
    unshuffled passes give each item to exactly one process (no padding, for exact synced metrics).
    """

    def __init__(
        self,
        dataset: HRDataset,
        device: torch.device,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.hr = dataset.hr.to(device)
        self.labels = dataset.labels.to(device)
        self.eval_rows = None if dataset.eval_rows is None else dataset.eval_rows.to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)
        self.drop_last = shuffle and self._items_per_process() > batch_size

    def __len__(self) -> int:
        items = self._items_per_process()
        return items // self.batch_size if self.drop_last else math.ceil(items / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        order = self._order()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            batch = {"hr": self.hr.index_select(0, index), "label": self.labels.index_select(0, index)}
            if self.eval_rows is not None:
                batch["eval_row"] = self.eval_rows.index_select(0, index)
            yield batch

    def _items_per_process(self) -> int:
        count = len(self.labels)
        if self.shuffle:
            return count // self.world_size
        return len(range(self.rank, count, self.world_size))

    def _order(self) -> Tensor:
        """This process's item indices for one pass, int64 on the device (one small copy per pass)."""
        count = len(self.labels)
        if self.shuffle:
            order = torch.randperm(count, generator=self.generator)[: count - count % self.world_size]
        else:
            order = torch.arange(count)
        return order[self.rank :: self.world_size].to(self.hr.device, non_blocking=True)
