"""What the numbers were measured on: processor, cores, library versions, threads, device and precision."""

from __future__ import annotations

import datetime
import os
import platform

import lightning
import torch

from medivision.benchmarks.clock import now


def describe(device: torch.device, precision: str) -> dict:
    """The header of the benchmark table: where, with what, and the machine's measured matrix-multiply rate.

    matmul_gflops_*: fp32 and bf16 GFLOP/s of a large matrix product on `device` (1024x1024 on a CPU,
    8192x8192 on a GPU), a practical peak that the convolution rates can be held against.
    """
    import onnxruntime

    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_name(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "onnxruntime": onnxruntime.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "precision": precision,
    }
    size = 8192 if device.type == "cuda" else 1024
    for dtype in (torch.float32, torch.bfloat16):
        info[f"matmul_gflops_{str(dtype).removeprefix('torch.')}"] = matmul_gflops(device, dtype, size)
    return info


def matmul_gflops(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 10) -> float:
    """GFLOP/s of `repeats` products of two size x size matrices (after one untimed product)."""
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
    a @ b
    start = now(device)
    for _ in range(repeats):
        a @ b
    return repeats * 2 * size**3 / (now(device) - start) / 1e9


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
