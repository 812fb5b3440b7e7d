"""The LightningDataModule: cached uint8 HR tensors in, {"hr", "lr", "label"} batches out on the device."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from medivision.data.build import find_source, load_source
from medivision.data.dataset import HRDataset, unit_range
from medivision.data.device_batches import DeviceBatches
from medivision.data.device_pipeline import evaluation_tables, training_pair
from medivision.data.loader import ResumableLoader
from medivision.data.settings import Augmentation, Loading, LowRes, Source, Splits
from medivision.data.splits import SPLITS, make_splits

logger = logging.getLogger(__name__)


class SRDataModule(L.LightningDataModule):
    """Brain MRI slices for super-resolution, configured by the typed groups of medivision.data.settings
    (built from the flat `data.*` keys by settings.data_module, which checks them).

    The dataloaders yield {"hr": uint8 [B, 1, hr_size, hr_size], "label": int64 [B], "index": int64 [B]}
    (index: the image's row in the cached data, stable across splits). Once a batch is on its device,
    `on_after_batch_transfer` turns it into (medivision.data.device_pipeline)
        hr    float [B, 1, hr_size, hr_size] in [0, 1], augmented when training; for source "synth",
              synthesized from the tissue maps
        lr    float [B, 1, hr_size/scale, hr_size/scale] in [0, 1], by the LowRes degradation
        label int64 [B], index into `class_names`
        index int64 [B], as loaded (validation and test batches only)
    so the degradation runs on the GPU and only uint8 HR crosses the bus. Training draws fresh noise for every
    batch; validation and test HR and LR are drawn from the split seed and each image's index, so they are the
    same in every run, and made once per device (`evaluation_tables`), not again every epoch.

    Loading.on_device keeps each split whole on the accelerator as uint8 and cuts batches there
    (DeviceBatches), in the order the DataLoader would use: no worker processes, no host-to-device copy per
    batch. Decoded images are cached under Source.cache_dir (medivision.data.build); medivision.data.splits
    makes the splits.

    The constructor finds the source's files (DataError naming data.root and the fix when it or its layout is
    wrong), so a run stops on bad data before a model is built; nothing is decoded before prepare_data/setup.
    """

    def __init__(self, source: Source, lowres: LowRes | None = None, splits: Splits | None = None,
                 loading: Loading | None = None, augmentation: Augmentation | None = None) -> None:
        super().__init__()
        self.source = source
        self.lowres = lowres or LowRes()
        self.splits = splits or Splits()
        self.loading = loading or Loading()
        self.augmentation = augmentation or Augmentation()
        self._found = find_source(source.source, source.root)
        self.class_names: list[str] = []  # this and the rest below: what setup() fills in
        self.duplicates_removed = 0
        self.repeats_removed = 0
        self.num_skipped = 0
        self.sizes: dict[str, int] = {}
        self.cache_path: Path | None = None
        self.cache_hit: bool | None = None
        self._prepared: tuple[dict[str, Any], bool, Path] | None = None
        self.train_set: HRDataset | None = None
        self.val_set: HRDataset | None = None
        self.test_set: HRDataset | None = None
        self._num_rows = 0  # rows in the cached data set, which "index" counts
        self._evaluation: dict[torch.device, tuple[Tensor | None, Tensor]] = {}

    def prepare_data(self) -> None:
        """Build the cache file if it is missing (Lightning runs this on one process per node).

        What it loaded is kept for setup() in the same process, so the cache is read once per run,
        not again for every fit/validate/test call.
        """
        if self.train_set is None and self._prepared is None:
            self._prepared = self._load()

    def setup(self, stage: str | None = None) -> None:
        """Load the cache (building it if prepare_data did not) and make all three splits, once."""
        if self.train_set is not None:
            return
        data, self.cache_hit, self.cache_path = self._prepared or self._load()
        self._prepared = None
        self.class_names = list(data["class_names"])
        self.num_skipped = len(data["skipped"])
        if self.num_skipped:
            warnings.warn(_skipped_message(data), stacklevel=2)

        made = make_splits(data, self.splits.val_fraction, self.splits.test_fraction, self.splits.seed,
                           self.splits.limit)
        self.duplicates_removed, self.repeats_removed = made.duplicates_removed, made.repeats_removed
        self._num_rows = len(data["labels"])
        self.train_set, self.val_set, self.test_set = (_subset(data, rows) for rows in made.rows)
        self.sizes = {name: len(dataset) for name, dataset in zip(SPLITS, self._datasets())}
        logger.info("%s", self.summary())

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader(self._ready(self.train_set), shuffle=True)

    def val_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader(self._ready(self.val_set), shuffle=False)

    def test_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader(self._ready(self.test_set), shuffle=False)

    def on_after_batch_transfer(self, batch: dict[str, Tensor] | Tensor, dataloader_idx: int) -> dict[str, Tensor]:
        """uint8 HR on the device -> float HR in [0, 1] (augmented when training) and its LR.

        Outside training (validating, testing, evaluate, the degradation matrix) HR and LR are looked up by each
        image's "index" (evaluation_pair), so only validation and test images have them. A bare tensor is not a
        batch of this data but the module's example LR input (the model summary's), and passes unchanged.
        """
        if isinstance(batch, Tensor):
            return batch
        if self.trainer is not None and self.trainer.training:
            hr, lr = self.training_pair(batch["hr"])
            return {"hr": hr, "lr": lr, "label": batch["label"]}
        return self.evaluation_batch(batch)

    def evaluation_batches(self, split: str = "test") -> Iterator[dict[str, Tensor]]:
        """The batches of `split` ("val" or "test") on the CPU as a validation or test step gets them, for tools
        that run outside a Trainer (evaluate, the degradation matrix): {"hr", "lr", "label", "index"}, see the class
        docstring. Sets the data up (at the call, not at the first batch)."""
        loaders = {"val": self.val_dataloader, "test": self.test_dataloader}
        if split not in loaders:
            raise ValueError(f"split={split!r} is not one of {', '.join(loaders)}")
        self.prepare_data()
        self.setup("test")
        return (self.evaluation_batch(batch) for batch in loaders[split]())

    def evaluation_batch(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """A collated validation/test batch {"hr" uint8, "label", "index"} on its device -> float HR in [0, 1]
        and its LR, looked up by "index" (evaluation_pair: what validation and test steps get); "index" is kept,
        so callbacks can trace an image back to its file."""
        hr, lr = self.evaluation_pair(batch["index"], batch["hr"])
        return {"hr": hr, "lr": lr, "label": batch["label"], "index": batch["index"]}

    def training_pair(self, hr: Tensor) -> tuple[Tensor, Tensor]:
        """Cached HR [B, C, H, W] on its device -> a training step's float HR [B, 1, H, W] and LR in [0, 1]
        (medivision.data.device_pipeline.training_pair)."""
        return training_pair(hr, self.source, self.lowres, self.augmentation)

    def evaluation_pair(self, rows: Tensor, cached: Tensor) -> tuple[Tensor, Tensor]:
        """The fixed HR and LR of validation/test images: float [B, 1, H, W] and [B, 1, h, w] in [0, 1] on rows'
        device. rows: int64 [B], the images' rows of the cached data ("index"); cached: their cached HR
        [B, C, H, W] (the HR itself, except for synth, whose fixed HR is looked up like the LR)."""
        table_hr, table_lr = self.evaluation_tables(rows.device)
        hr = unit_range(cached.to(rows.device)) if table_hr is None else table_hr.index_select(0, rows)
        return hr, table_lr.index_select(0, rows)

    def evaluation_tables(self, device: torch.device) -> tuple[Tensor | None, Tensor]:
        """The HR (synth only) and LR of every validation and test image by row of the cached data, float
        [N_rows, 1, H, W] and [N_rows, 1, h, w] in [0, 1] on `device`, training rows NaN
        (medivision.data.device_pipeline.evaluation_tables). Made once per device: validating every epoch costs
        no degradation."""
        if device not in self._evaluation:
            self._evaluation[device] = evaluation_tables(
                (self._ready(self.val_set), self._ready(self.test_set)), self._num_rows, device, self.source,
                self.lowres, self.splits.seed)
        return self._evaluation[device]

    def summary(self) -> str:
        """Image counts per split and class, duplicates removed, files skipped and the cache file."""
        if self.train_set is None:
            return f"{self.source.source} data: not set up"
        source, lr_size = self.source, self.source.hr_size // self.lowres.scale
        width = max(len(name) for name in [*self.class_names, "total", "split"]) + 2
        lines = [
            f"{source.source} data, {source.hr_size}x{source.hr_size} HR, {lr_size}x{lr_size} LR "
            f"({self.lowres.degradation})",
            "split".ljust(8) + "".join(name.rjust(width) for name in [*self.class_names, "total"]),
        ]
        for name, dataset in zip(SPLITS, self._datasets()):
            counts = dataset.class_counts(len(self.class_names))
            lines.append(name.ljust(8) + "".join(str(n).rjust(width) for n in [*counts, len(dataset)]))
        lines.append(
            f"removed {self.duplicates_removed} exact duplicates across splits and {self.repeats_removed} "
            f"repeated copies; skipped {self.num_skipped} unreadable files; "
            f"cache {'hit' if self.cache_hit else 'built'}: {self.cache_path}"
        )
        return "\n".join(lines)

    def _load(self) -> tuple[dict[str, Any], bool, Path]:
        return load_source(self.source, self._found)

    def _datasets(self) -> tuple[HRDataset, HRDataset, HRDataset]:
        return self._ready(self.train_set), self._ready(self.val_set), self._ready(self.test_set)

    def _ready(self, dataset: HRDataset | None) -> HRDataset:
        if dataset is None:
            raise RuntimeError("call SRDataModule.setup() before asking for data")
        return dataset

    def device_batches(self, dataset: HRDataset, shuffle: bool, device: torch.device) -> DeviceBatches:
        """`dataset`'s batches cut on `device`, in the order and shares the DataLoader would use
        (data.on_device; the training split shuffles)."""
        return DeviceBatches(dataset, device, self.loading.batch_size, *self._sampling(dataset, shuffle))

    def _loader(self, dataset: HRDataset, shuffle: bool) -> DataLoader | DeviceBatches:
        if self.loading.on_device:
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
            return self.device_batches(dataset, shuffle, device)
        sampler, drop_last = self._sampling(dataset, shuffle)
        return (ResumableLoader if shuffle else DataLoader)(
            dataset,
            batch_size=self.loading.batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.loading.num_workers,
            pin_memory=self.loading.pin_memory,
            persistent_workers=self.loading.num_workers > 0,
            # Worker seeds come from here rather than from torch's global generator, whose state a resumed
            # run restores (medivision.training.checkpointing.RandomState) and nothing else may advance.
            generator=torch.Generator().manual_seed(self.splits.seed),
        )

    def _sampling(self, dataset: HRDataset, shuffle: bool) -> tuple[Sampler[int] | None, bool]:
        """The sampler of a training (shuffle) or evaluation split, and whether to drop a ragged last batch."""
        if not shuffle:
            return self._evaluation_sampler(dataset), False
        # Dropping the ragged last batch keeps batch statistics steady, unless it would drop everything.
        return self._training_sampler(dataset), len(dataset) > self.loading.batch_size

    def _training_sampler(self, dataset: HRDataset) -> DistributedSampler:
        """A shuffle that depends only on the seed and the epoch (Lightning sets it), so a run resumed in the
        middle of an epoch sees the same order; under DDP each process takes its share."""
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer is not None else (1, 0)
        return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.splits.seed)

    def _evaluation_sampler(self, dataset: HRDataset) -> UnrepeatedDistributedSampler | None:
        """Under DDP, each validation/test image on exactly one process.

        Lightning's default DistributedSampler pads the split with repeated images so that every process
        gets as many batches, which would count those images twice in the synced metrics.
        """
        if self.trainer is None or self.trainer.world_size < 2:
            return None
        return UnrepeatedDistributedSampler(
            dataset, num_replicas=self.trainer.world_size, rank=self.trainer.global_rank, shuffle=False
        )


def _subset(data: dict[str, Any], index: np.ndarray) -> HRDataset:
    rows = torch.from_numpy(index)
    return HRDataset(
        data["hr"][rows], data["labels"][rows], [data["paths"][i] for i in index], data["slice_index"][rows], rows
    )


def _skipped_message(data: dict[str, Any]) -> str:
    shown = 10
    listed = "; ".join(
        f"{path} ({reason})" for path, reason in zip(data["skipped"][:shown], data["skip_reasons"][:shown])
    )
    more = len(data["skipped"]) - shown
    return (
        f"skipped {len(data['skipped'])} of {data['num_files']} files that could not be read: {listed}"
        + (f"; and {more} more" if more > 0 else "")
    )
