"""The LightningDataModule: cached uint8 HR tensors in, {"hr", "lr", "label"} batches out on the device."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from medivision.data import degradations
from medivision.data.build import EMBEDDED, SOURCES, find_source, load_source
from medivision.data.contrast import ContrastOptions, contrast_problems, synthesize
from medivision.data.dataset import HRDataset, unit_range
from medivision.data.degradation_options import (
    DEGRADATIONS,
    RANDOM_KINDS,
    THROUGH_PLANE_KINDS,
    DegradationOptions,
    options_problems,
)
from medivision.data.device_batches import DeviceBatches
from medivision.data.intensity_augment import IntensityAugment, augment_intensity, augment_problems
from medivision.data.loader import ResumableLoader
from medivision.data.splits import SPLITS, make_splits
from medivision.data.volumes import PLANES
from medivision.io.intensity import INTENSITY_POLICIES

logger = logging.getLogger(__name__)


class SRDataModule(L.LightningDataModule):
    """Brain MRI slices for 4x super-resolution.

    The dataloaders yield {"hr": uint8 [B, 1, hr_size, hr_size], "label": int64 [B], "index": int64 [B]}
    (index: the image's row in the cached data, stable across splits). Once a batch is on its device,
    `on_after_batch_transfer` turns it into
        hr    float [B, 1, hr_size, hr_size] in [0, 1], randomly flipped/rotated (and changed in intensity,
              with `intensity_augment`) when training; for source "synth", synthesized from the tissue maps
        lr    float [B, 1, hr_size/scale, hr_size/scale] in [0, 1], degrade(hr, scale, degradation, ...)
        label int64 [B], index into `class_names`
        index int64 [B], as loaded (validation and test batches only)
    so the degradation runs on the GPU and only uint8 HR crosses the bus. `degradation` is one of
    medivision.data.degradation_options.DEGRADATIONS, with `degradation_options` (DegradationOptions fields).
    Training draws fresh noise for every batch; validation and test noise is drawn from `seed` and each
    image's index, so their LR is the same in every run (see medivision.data.degradations). That LR is
    made once per device (`evaluation_pair`), not again every epoch.

    on_device: keep each split whole on the accelerator as uint8 and cut batches there (DeviceBatches), in
    the order the DataLoader would use: no worker processes and no host-to-device copy per batch
    (num_workers and pin_memory are then unused).

    source: "kaggle" (root holds Training/ and Testing/), "folder" (images below root), "nifti"
    (a .nii/.nii.gz file or a folder of them), "mni152" (the template inside nilearn; no root) or "synth"
    (random contrasts drawn from the template's tissue maps, `contrast` options: medivision.data.contrast;
    the cached items are the maps, uint8 [4, hr_size, hr_size], and the HR is made from them on the device,
    fresh every training batch, seeded per image for validation and test).
    intensity_augment: random gamma/contrast/inversion of training HR for any source
    (medivision.data.intensity_augment; None or all zero: off).
    Volumes are sliced along `axes`, keeping slices with more than `min_foreground` foreground.
    Every file is read by the one reader of its format and mapped to [0, 1] by the `intensity` policy
    (medivision.io.intensity: "minmax", each image's or volume's own range, or "dtype"), exactly as enhance
    reads it; checkpoints record the policy (model.intensity follows data.intensity). Decoded images are
    cached under `cache_dir`; see medivision.data.splits for how splits are made.

    The constructor checks the arguments and finds the source's files (DataError naming data.root and the
    fix when it or its layout is wrong), so a run stops on bad data before a model is built; nothing is
    decoded before prepare_data/setup.
    """

    def __init__(
        self,
        source: str = "kaggle",
        root: str | None = None,
        hr_size: int = 128,
        scale: int = 4,
        degradation: str = "bicubic",
        degradation_options: Mapping[str, Any] | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        augment: bool = True,
        cache_dir: str = ".cache/medivision",
        limit: int | None = None,
        axes: Sequence[str] = PLANES,
        min_foreground: float = 0.15,
        pin_memory: bool = False,
        on_device: bool = False,
        intensity: str = "minmax",
        contrast: Mapping[str, Any] | None = None,
        intensity_augment: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        axes = tuple(axes)
        _check_arguments(
            source, root, hr_size, scale, degradation, degradation_options, batch_size, num_workers,
            val_fraction, test_fraction, limit, axes, min_foreground, intensity, contrast, intensity_augment,
        )  # fmt: skip
        self._found = find_source(source, root)
        self.source = source
        self.root = root
        self.hr_size = hr_size
        self.scale = scale
        self.degradation = degradation
        self.degradation_options = DegradationOptions.from_config(degradation_options)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed
        self.augment = augment
        self.cache_dir = cache_dir
        self.limit = limit
        self.axes = axes
        self.min_foreground = min_foreground
        self.pin_memory = pin_memory
        self.on_device = on_device
        self.intensity = intensity
        self.contrast = ContrastOptions.from_config(contrast)
        self.intensity_augment = IntensityAugment.from_config(intensity_augment)
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

        made = make_splits(data, self.val_fraction, self.test_fraction, self.seed, self.limit)
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

    def on_after_batch_transfer(self, batch: dict[str, Tensor], dataloader_idx: int) -> dict[str, Tensor]:
        """uint8 HR on the device -> float HR in [0, 1] (augmented when training) and its LR.

        Outside training (validating, testing, evaluate, the degradation matrix) HR and LR are looked up by each
        image's "index" (evaluation_pair), so only validation and test images have them.
        """
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
        """Cached HR [B, C, H, W] (uint8 in [0, 255], or float in [0, 1]) on its device -> what a training step
        gets: float HR [B, 1, H, W] in [0, 1] (for synth: fresh contrasts), randomly flipped/rotated when
        `augment`, changed in intensity with `intensity_augment`, and its LR with fresh noise."""
        hr = self._unit_hr(hr)
        if self.augment:
            hr = degradations.augment(hr)
        hr = augment_intensity(hr, self.intensity_augment)
        return hr, degradations.degrade(hr, self.scale, self.degradation, self.degradation_options)

    def evaluation_pair(self, rows: Tensor, cached: Tensor) -> tuple[Tensor, Tensor]:
        """The fixed HR and LR of validation/test images: float [B, 1, H, W] and [B, 1, h, w] in [0, 1] on rows'
        device. rows: int64 [B], the images' rows of the cached data ("index"); cached: their cached HR
        [B, C, H, W] (the HR itself, except for synth, whose fixed HR is looked up like the LR)."""
        table_hr, table_lr = self.evaluation_tables(rows.device)
        hr = unit_range(cached.to(rows.device)) if table_hr is None else table_hr.index_select(0, rows)
        return hr, table_lr.index_select(0, rows)

    def evaluation_tables(self, device: torch.device) -> tuple[Tensor | None, Tensor]:
        """The HR (synth only; other sources' HR is the cached image) and LR of every validation and test image,
        by row of the cached data set ("index"): float [N_rows, 1, H, W] and [N_rows, 1, h, w] in [0, 1] on
        `device`; training rows hold NaN (they have no fixed images).

        Made once per device, in chunks; the synthetic contrasts and the noise of the noisy degradations are drawn
        from `seed` and each image's row (degradations.sample_seeds), so an image's HR and LR do not depend on its
        batch and are the same in every run. Validating every epoch costs no degradation. 5,712 rows take 23 MB.
        """
        if device not in self._evaluation:
            size = self.hr_size // self.scale
            table_lr = torch.full((self._num_rows, 1, size, size), float("nan"), device=device)
            table_hr = (torch.full((self._num_rows, 1, self.hr_size, self.hr_size), float("nan"), device=device)
                        if self.source == "synth" else None)
            noisy = self.degradation in RANDOM_KINDS
            for dataset in (self._ready(self.val_set), self._ready(self.test_set)):
                if len(dataset) == 0:  # a test-only source (real_scans) has no validation images
                    continue
                for stored, rows in zip(dataset.hr.split(256), dataset.rows.split(256)):
                    seeds = degradations.sample_seeds(self.seed, rows)
                    hr = self._unit_hr(stored.to(device), seeds)
                    table_lr[rows.to(device)] = degradations.degrade(
                        hr, self.scale, self.degradation, self.degradation_options, seeds if noisy else None
                    )
                    if table_hr is not None:
                        table_hr[rows.to(device)] = hr
            self._evaluation[device] = (table_hr, table_lr)
        return self._evaluation[device]

    def _unit_hr(self, stored: Tensor, seeds: list[int] | None = None) -> Tensor:
        """Cached HR [B, C, H, W] -> float HR [B, 1, H, W] in [0, 1]: the image itself, or for synth a contrast
        drawn from the tissue maps (seeded per image with `seeds`, fresh without)."""
        hr = unit_range(stored)
        return synthesize(hr, self.contrast, seeds) if self.source == "synth" else hr

    def summary(self) -> str:
        """Image counts per split and class, duplicates removed, files skipped and the cache file."""
        if self.train_set is None:
            return f"{self.source} data: not set up"
        width = max(len(name) for name in [*self.class_names, "total", "split"]) + 2
        lines = [
            f"{self.source} data, {self.hr_size}x{self.hr_size} HR, {self.hr_size // self.scale}x"
            f"{self.hr_size // self.scale} LR ({self.degradation})",
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
        return load_source(
            self.source, self._found, self.hr_size, self.axes, self.min_foreground, self.cache_dir, self.intensity
        )

    def _datasets(self) -> tuple[HRDataset, HRDataset, HRDataset]:
        return self._ready(self.train_set), self._ready(self.val_set), self._ready(self.test_set)

    def _ready(self, dataset: HRDataset | None) -> HRDataset:
        if dataset is None:
            raise RuntimeError("call SRDataModule.setup() before asking for data")
        return dataset

    def device_batches(self, dataset: HRDataset, shuffle: bool, device: torch.device) -> DeviceBatches:
        """`dataset`'s batches cut on `device`, in the order and shares the DataLoader would use
        (data.on_device; the training split shuffles)."""
        return DeviceBatches(dataset, device, self.batch_size, *self._sampling(dataset, shuffle))

    def _loader(self, dataset: HRDataset, shuffle: bool) -> DataLoader | DeviceBatches:
        if self.on_device:
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
            return self.device_batches(dataset, shuffle, device)
        sampler, drop_last = self._sampling(dataset, shuffle)
        return (ResumableLoader if shuffle else DataLoader)(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            # Worker seeds come from here rather than from torch's global generator, whose state a resumed
            # run restores (medivision.training.checkpointing.RandomState) and nothing else may advance.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _sampling(self, dataset: HRDataset, shuffle: bool) -> tuple[Sampler[int] | None, bool]:
        """The sampler of a training (shuffle) or evaluation split, and whether to drop a ragged last batch."""
        if not shuffle:
            return self._evaluation_sampler(dataset), False
        # Dropping the ragged last batch keeps batch statistics steady, unless it would drop everything.
        return self._training_sampler(dataset), len(dataset) > self.batch_size

    def _training_sampler(self, dataset: HRDataset) -> DistributedSampler:
        """A shuffle that depends only on the seed and the epoch (Lightning sets it), so a run resumed in the
        middle of an epoch sees the same order; under DDP each process takes its share."""
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer is not None else (1, 0)
        return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.seed)

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


def _check_arguments(
    source: str,
    root: str | None,
    hr_size: int,
    scale: int,
    degradation: str,
    degradation_options: Mapping[str, Any] | None,
    batch_size: int,
    num_workers: int,
    val_fraction: float,
    test_fraction: float,
    limit: int | None,
    axes: tuple[str, ...],
    min_foreground: float,
    intensity: str,
    contrast: Mapping[str, Any] | None,
    intensity_augment: Mapping[str, Any] | None,
) -> None:
    """Fail before any file is read, naming the config key that is wrong."""
    problems = []
    if source not in SOURCES:
        problems.append(f"data.source={source!r} is not one of {', '.join(SOURCES)}")
    elif root is None and source not in EMBEDDED:
        problems.append(
            f"data.root is not set: data.source={source} reads its files from data.root; pass "
            "data.root=/path/to/the/data (for the Kaggle set: the folder holding Training/ and Testing/, "
            "which MEDIVISION_DATA=/path/to/the/data also sets)"
        )
    if scale < 1 or hr_size < 1:
        problems.append(f"data.hr_size={hr_size} and data.scale={scale} must be positive")
    elif hr_size % scale:
        problems.append(f"data.hr_size={hr_size} is not divisible by data.scale={scale}")
    if degradation not in DEGRADATIONS:
        problems.append(
            f"data.degradation={degradation!r} is not one of {', '.join(DEGRADATIONS)}"
        )
    elif (degradation in THROUGH_PLANE_KINDS) != (scale == 1):
        problems.append(f"data.degradation={degradation} with data.scale={scale}: the through-plane kinds "
                        f"({', '.join(THROUGH_PLANE_KINDS)}) and only they keep the HR grid, data.scale=1")
    problems += [f"data.degradation_options{problem}" for problem in options_problems(degradation_options)]
    if batch_size < 1:
        problems.append(f"data.batch_size={batch_size} must be at least 1")
    if num_workers < 0:
        problems.append(f"data.num_workers={num_workers} must be 0 or more")
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            problems.append(f"data.{key}={value} must be in [0, 1)")
    if val_fraction + test_fraction >= 1:
        problems.append(
            f"data.val_fraction + data.test_fraction = {val_fraction + test_fraction} leaves no training data"
        )
    if limit is not None and limit < 1:
        problems.append(f"data.limit={limit} must be at least 1, or null for no limit")
    if not axes or len(set(axes)) != len(axes) or not set(axes) <= set(PLANES):
        problems.append(f"data.axes={list(axes)} must be distinct planes from {', '.join(PLANES)}")
    if not 0 <= min_foreground < 1:
        problems.append(f"data.min_foreground={min_foreground} must be in [0, 1)")
    if intensity not in INTENSITY_POLICIES:
        problems.append(f"data.intensity={intensity!r} is not one of {', '.join(INTENSITY_POLICIES)}")
    problems += [f"data.contrast{problem}" for problem in contrast_problems(contrast)]
    problems += [f"data.intensity_augment{problem}" for problem in augment_problems(intensity_augment)]
    if problems:
        raise ValueError("; ".join(problems))
