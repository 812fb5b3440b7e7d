"""What the numbers were measured on: processor, cores, library versions, threads, device and precision."""

from __future__ import annotations

import datetime
import os
import platform
from importlib.metadata import PackageNotFoundError, version

import lightning
import torch

from medivision.benchmarks.clock import now


def describe(device: torch.device, precision: str) -> dict:
    """The header of the benchmark table: where, with what, how busy, and what this machine's convolutions reach.

    conv_gflops_*: GFLOP/s of the generator's main layer alone (3x3 convolution, 64 -> 64 channels, a batch
    of 64 maps of 32x32, channels-last) in fp32 and bf16, a practical peak for the whole-network rates.
    load_average: the 1-minute load average as the benchmark starts; more than the benchmark's own
    threads means other work shared the processor, and the numbers are low.
    """
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_name(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "onnxruntime": _version("onnxruntime"),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "precision": precision,
        "load_average": os.getloadavg()[0],
        "conv_gflops_float32": conv_gflops(device, torch.float32),
        "conv_gflops_bfloat16": conv_gflops(device, torch.bfloat16),
    }


@torch.inference_mode()
def conv_gflops(device: torch.device, dtype: torch.dtype, repeats: int = 10) -> float:
    """GFLOP/s of `repeats` 3x3 convolutions, 64 -> 64 channels, on [64, 64, 32, 32] (after one untimed one)."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device, dtype, memory_format=torch.channels_last)
    x = torch.rand(64, 64, 32, 32, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    conv(x)
    start = now(device)
    for _ in range(repeats):
        conv(x)
    return repeats * 2 * 64 * 64 * 9 * 32 * 32 * 64 / (now(device) - start) / 1e9


def _version(package: str) -> str | None:
    """The installed version of `package`, None where it is not installed (only the onnxruntime variant needs it)."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
