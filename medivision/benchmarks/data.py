"""Data speed: decoding a folder into the cache (cold), starting from the cache (warm), and batches per second.

Cold means MediVision's cache is empty, not the operating system's: files just written or read recently
come from the page cache, so a first read from a slow disk can take longer than measured here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from medivision.benchmarks.clock import CpuUse, now
from medivision.data.datamodule import SRDataModule
from medivision.data.decode import available_cpus
from medivision.data.device_batches import DeviceBatches
from medivision.io.images import IMAGE_SUFFIXES

RESEARCH_SET_TRAINING_IMAGES = 5712


def measure_data(root: Path, datamodule: Callable[..., SRDataModule], device: torch.device,
                 loader_batches: int) -> dict:
    """Cold preprocessing and warm start of the images under `root` (in a fresh cache folder), then the loaders'
    rates. datamodule(cache_dir=...): the configured SRDataModule of `root` with that cache folder, prepared and
    set up."""
    files = [path for path in Path(root).rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES]
    cpu = CpuUse.read()
    with tempfile.TemporaryDirectory(prefix="benchmark-cache-") as cache_dir:
        start = now(device)
        cold = datamodule(cache_dir=cache_dir)
        cold_seconds = now(device) - start
        start = now(device)
        warm = datamodule(cache_dir=cache_dir)
        warm_seconds = now(device) - start
    others = CpuUse.read().others_since(cpu)
    rate = len(files) / cold_seconds
    return {
        "files": len(files),
        "mean_file_kb": sum(os.path.getsize(path) for path in files) / max(len(files), 1) / 1024,
        "decode_threads": available_cpus(),
        "cold_seconds": cold_seconds,
        "cold_images_per_s": rate,
        "cold_seconds_for_5712": RESEARCH_SET_TRAINING_IMAGES / rate,
        "cold_cache_hit": cold.cache_hit,
        "warm_start_seconds": warm_seconds,
        "warm_cache_hit": warm.cache_hit,
        "others_cpu": others,
        "loader": loader_rates(warm, device, loader_batches),
    }


def loader_rates(datamodule: SRDataModule, device: torch.device, batches: int) -> dict:
    """Training batches per second: raw from the configured DataLoader, then with the transfer to `device`,
    augmentation and degradation; and the same from batches cut on the device (data.on_device)."""
    on_device_only = datamodule.loading.on_device
    from_loader = _device_batches(datamodule, "cpu") if on_device_only else datamodule.train_dataloader()
    on_device = _device_batches(datamodule, device)
    cpu = CpuUse.read()
    rates = {
        "batch_size": datamodule.loading.batch_size,
        "num_workers": datamodule.loading.num_workers,
        "dataloader_batches_per_s": _rate(from_loader, batches, device, None),
        "dataloader_with_degradation_batches_per_s": _rate(from_loader, batches, device, datamodule),
        "on_device_batches_per_s": _rate(on_device, batches, device, None),
        "on_device_with_degradation_batches_per_s": _rate(on_device, batches, device, datamodule),
    }
    return {**rates, "others_cpu": CpuUse.read().others_since(cpu)}


def _device_batches(datamodule: SRDataModule, device: torch.device | str) -> DeviceBatches:
    return datamodule.device_batches(datamodule.train_set, True, torch.device(device))


def _rate(loader, batches: int, device: torch.device, datamodule: SRDataModule | None) -> float:
    """Batches per second over `batches` batches (epochs repeat as needed), after one untimed batch.

    With `datamodule`, each batch also goes to `device` and through augment and degrade, as in training.
    """
    def produce():
        while True:
            for batch in loader:
                if datamodule is None:
                    yield batch["hr"]
                    continue
                yield datamodule.training_pair(batch["hr"].to(device, non_blocking=True))[1]

    stream = produce()
    next(stream)
    start = now(device)
    for _ in range(batches):
        next(stream)
    seconds = now(device) - start
    stream.close()
    return batches / seconds
