"""The HR images of one split, held in memory as uint8 tensors."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset


def unit_range(hr: Tensor) -> Tensor:
    """Cached HR as the network sees it: uint8 [0, 255] -> float [0, 1]; float input is taken as already in [0, 1]."""
    return hr.float().div_(255.0) if hr.dtype == torch.uint8 else hr.float()


class HRDataset(Dataset):
    """Items are {"hr": uint8 [1, H, W] in [0, 255], "label": int64 scalar, "index": int64 scalar}.

    Nothing is decoded per item. hr: uint8 [N, 1, H, W]; labels: int64 [N]; paths: the file each item
    came from; slice_index: int64 [N], the slice position for volume slices, -1 for 2-D images (for
    tracing an item back); rows: int64 [N], each item's row in the cached data set, returned as "index"
    (it seeds the item's validation/test noise, so it must not depend on the split; default 0..N-1).
    """

    def __init__(
        self, hr: Tensor, labels: Tensor, paths: list[str], slice_index: Tensor, rows: Tensor | None = None
    ) -> None:
        self.hr = hr
        self.labels = labels
        self.paths = paths
        self.slice_index = slice_index
        self.rows = torch.arange(len(labels)) if rows is None else rows

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"hr": self.hr[index], "label": self.labels[index], "index": self.rows[index]}

    def class_counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.labels, minlength=num_classes).tolist()
