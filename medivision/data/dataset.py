"""The HR images of one split, held in memory as uint8 tensors."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset


class HRDataset(Dataset):
    """Items are {"hr": uint8 [1, H, W] in [0, 255], "label": int64 scalar}; nothing is decoded per item.

    hr: uint8 [N, 1, H, W]; labels: int64 [N]; paths: the file each item came from; slice_index:
    int64 [N], the slice position for volume slices, -1 for 2-D images (for tracing an item back).
    eval_rows: int64 [N] or None; when given, items also carry "eval_row", the item's row in the data
    module's table of precomputed validation/test LR images (see SRDataModule.evaluation_lr).
    """

    def __init__(
        self, hr: Tensor, labels: Tensor, paths: list[str], slice_index: Tensor, eval_rows: Tensor | None = None
    ) -> None:
        self.hr = hr
        self.labels = labels
        self.paths = paths
        self.slice_index = slice_index
        self.eval_rows = eval_rows

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        item = {"hr": self.hr[index], "label": self.labels[index]}
        if self.eval_rows is not None:
            item["eval_row"] = self.eval_rows[index]
        return item

    def class_counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.labels, minlength=num_classes).tolist()
