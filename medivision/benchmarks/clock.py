"""Wall-clock timing that waits for the accelerator, a measure of other work sharing the processor, and medians."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass

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


@dataclass
class CpuUse:
    """A reading of the machine's busy CPU time and this process tree's (Linux /proc; None elsewhere)."""

    wall: float
    machine: float | None
    ours: float | None

    @classmethod
    def read(cls) -> CpuUse:
        try:
            return cls(time.perf_counter(), _machine_busy_seconds(), _tree_cpu_seconds(os.getpid()))
        except OSError:
            return cls(time.perf_counter(), None, None)

    def others_since(self, start: CpuUse) -> float | None:
        """Cores' worth of CPU that other processes used between `start` and this reading (0 = none; 1 = a
        whole core). Timings taken while others used the processor are low, by up to that share."""
        if self.machine is None or start.machine is None:
            return None
        return max(0.0, (self.machine - start.machine) - (self.ours - start.ours)) / (self.wall - start.wall)


def _machine_busy_seconds() -> float:
    with open("/proc/stat") as file:
        fields = [int(value) for value in file.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_seconds(root: int) -> float:
    """User and system CPU seconds of process `root` and its descendants (DataLoader workers, compilers),
    living or ended."""
    children: dict[int, list[int]] = {}
    seconds: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        # utime, stime, and the same of its children that have ended (reaped children move there)
        seconds[pid] = sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += seconds.get(pid, 0.0)
        stack += children.get(pid, [])
    return total
