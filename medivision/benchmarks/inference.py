"""Inference throughput of the EMA generator in several ways of running it, and what each does to PSNR.

Every variant computes SRModule.forward (generator output clamped to [0, 1]) on the same LR images, and its
outputs are compared with fp32 eager PyTorch on the same inputs: the change in PSNR against HR (dB), the
PSNR of the variant's outputs against fp32 eager's (agreement, dB; higher is closer) and the largest absolute
difference. With random weights the PSNR against HR is low, and a change in it says less than the agreement.
Throughput is images per second over all images, `repeats` timed passes after one untimed pass, median.
GFLOP/s is that rate times the generator's counted FLOPs per image (2 per multiply-add).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from medivision.benchmarks.clock import CpuUse, median, now
from medivision.inference.model_file import model_metadata
from medivision.inference.onnx_export import write_onnx
from medivision.nets import ClampedGenerator
from medivision.report.metrics import psnr

VARIANTS = ("eager", "channels_last", "bf16", "compile", "compile_bf16", "onnxruntime")
Runner = Callable[[Tensor], Tensor]


def measure_inference(generator: nn.Module, config: dict, lr: Tensor, hr: Tensor, batch_sizes: list[int],
                      variants: list[str], repeats: int, device: torch.device, threads: int) -> dict:
    """Time and check each variant at each batch size.

    generator: an SRResNet (its weights decide the PSNR numbers, not the speed); config: its keyword arguments.
    lr: float [N, 1, h, w] in [0, 1]; hr: float [N, 1, scale*h, scale*w], the images lr was made from.
    """
    model = ClampedGenerator(generator).eval().to(device)
    lr, hr = lr.to(device), hr.to(device)
    with torch.inference_mode():
        reference = _run_all(model, lr, max(batch_sizes))
    reference_psnr = _psnr(reference, hr)
    results, skipped = [], {}
    with tempfile.TemporaryDirectory() as workdir:
        for variant in variants:
            try:
                runner = _RUNNERS[variant](model, config, device, threads, Path(workdir))
            except _Unavailable as reason:
                skipped[variant] = str(reason)
                continue
            for batch_size in batch_sizes:
                speed, outputs, others = _time(runner, lr, batch_size, repeats, device)
                psnr = _psnr(outputs, hr)
                results.append({
                    "variant": variant, "batch_size": batch_size, "images_per_s": speed,
                    "psnr_db": psnr, "psnr_change_db": psnr - reference_psnr,
                    "agreement_psnr_db": _psnr(outputs, reference),
                    "max_abs_diff": float((outputs - reference).abs().max()), "others_cpu": others,
                })
    flops = _flops_per_image(model, lr[:1])
    for row in results:
        row["gflop_per_s"] = row["images_per_s"] * flops / 1e9
    return {
        "generator": config, "images": len(lr), "lr_size": list(lr.shape[-2:]), "threads": threads,
        "gflop_per_image": flops / 1e9, "reference_psnr_db": reference_psnr, "results": results,
        "skipped": skipped,
    }


class _Unavailable(Exception):
    """A variant that cannot run here (say, no compiler for torch.compile); the reason is reported."""


def _eager(model: nn.Module, config: dict, device: torch.device, threads: int, workdir: Path) -> Runner:
    return _without_autograd(model)


def _channels_last(model: nn.Module, config: dict, device: torch.device, threads: int, workdir: Path) -> Runner:
    # A 1-channel input is already channels-last in memory; the weights carry the layout from the first conv on.
    return _without_autograd(copy.deepcopy(model).to(memory_format=torch.channels_last))


def _without_autograd(model: Runner) -> Runner:
    @torch.inference_mode()
    def run(lr: Tensor) -> Tensor:
        return model(lr)

    return run


def _bf16(model: nn.Module, config: dict, device: torch.device, threads: int, workdir: Path) -> Runner:
    """bf16 autocast with channels-last weights (oneDNN's bf16 kernels on CPUs that have them, tensor cores
    on GPUs); the bicubic skip and the output stay float32."""
    return _autocast_bf16(copy.deepcopy(model).to(memory_format=torch.channels_last), device)


def _compile(model: nn.Module, config: dict, device: torch.device, threads: int, workdir: Path) -> Runner:
    """torch.compile of the channels-last model with frozen weights (constants folded, oneDNN weights
    pre-packed on CPUs); compiled on the first call of each batch size, which the untimed pass absorbs."""
    return _frozen(_without_autograd(_compiled(model, device)))


def _compile_bf16(model: nn.Module, config: dict, device: torch.device, threads: int, workdir: Path) -> Runner:
    """The compiled model of `compile` under bf16 autocast."""
    return _frozen(_autocast_bf16(_compiled(model, device), device))


def _compiled(model: nn.Module, device: torch.device) -> nn.Module:
    import shutil

    if device.type == "cpu" and not (shutil.which("c++") or shutil.which("g++")):
        raise _Unavailable("torch.compile on the CPU needs a C++ compiler, and this machine has none")
    return torch.compile(copy.deepcopy(model).to(memory_format=torch.channels_last), dynamic=False)


def _frozen(runner: Runner) -> Runner:
    import torch._inductor.config as inductor

    def run(lr: Tensor) -> Tensor:
        with inductor.patch(freezing=True):
            return runner(lr)

    return run


def _autocast_bf16(model: Runner, device: torch.device) -> Runner:
    @torch.inference_mode()
    def run(lr: Tensor) -> Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return model(lr).float()

    return run


def _onnxruntime(model: nn.Module, config: dict, device: torch.device, threads: int, workdir: Path) -> Runner:
    """The file medivision.export writes, under onnxruntime with all graph optimisations and `threads`
    intra-op threads (CPU), or its CUDA provider on a GPU."""
    import numpy as np
    import onnxruntime

    providers = ["CUDAExecutionProvider"] if device.type == "cuda" else ["CPUExecutionProvider"]
    if providers[0] not in onnxruntime.get_available_providers():
        raise _Unavailable(f"this onnxruntime has no {providers[0]}")
    path = workdir / "generator.onnx"
    write_onnx(copy.deepcopy(model).cpu(), path, model_metadata(config, "minmax", {}, "benchmark"), opset=17)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=providers)

    def run(lr: Tensor) -> Tensor:
        array = np.ascontiguousarray(lr.cpu().numpy())
        return torch.from_numpy(session.run(None, {"lr": array})[0]).to(device)

    return run


_RUNNERS = {"eager": _eager, "channels_last": _channels_last, "bf16": _bf16, "compile": _compile,
            "compile_bf16": _compile_bf16, "onnxruntime": _onnxruntime}


def _time(runner: Runner, lr: Tensor, batch_size: int, repeats: int,
          device: torch.device) -> tuple[float, Tensor, float | None]:
    """Images/s (median of `repeats` timed passes over lr after one untimed pass), the outputs of the last
    pass, and the cores' worth of CPU other processes used meanwhile."""
    _run_all(runner, lr, batch_size)
    seconds = []
    before = CpuUse.read()
    for _ in range(repeats):
        start = now(device)
        outputs = _run_all(runner, lr, batch_size)
        seconds.append(now(device) - start)
    return len(lr) / median(seconds), outputs, CpuUse.read().others_since(before)


def _run_all(runner: Runner, lr: Tensor, batch_size: int) -> Tensor:
    return torch.cat([runner(lr[i : i + batch_size]).float() for i in range(0, len(lr), batch_size)])


def _psnr(sr: Tensor, hr: Tensor) -> float:
    """Mean over images of PSNR (dB, data range 1); inf when every image is identical."""
    return float(psnr(sr.float(), hr.float()).mean())


def _flops_per_image(model: nn.Module, lr: Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(lr)
    return float(counter.get_total_flops())
