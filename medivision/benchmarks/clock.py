"""Wall-clock timing that waits for the accelerator, and the summary statistics the benchmark reports."""

from __future__ import annotations

import statistics
import time

import torch


def wait(device: torch.device) -> None:
    """Block until `device` has finished its queued work (kernels run asynchronously on a GPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def now(device: torch.device) -> float:
    """Seconds on a monotonic clock, read after everything queued on `device` has run."""
    wait(device)
    return time.perf_counter()


def median(values: list[float]) -> float:
    return float(statistics.median(values))
