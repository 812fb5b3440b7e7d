"""Running a trained generator: one small interface over checkpoints and ONNX files, tiling, data consistency.

Everything here works on float tensors in [0, 1] on the CPU; mapping file intensities to and from that
range is the job of medivision.intensity.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from medivision.checkpoints import load_generator
from medivision.data.degradations import DegradationOptions, degrade


class SRModel(Protocol):
    """A super-resolution network: LR [B, 1, h, w] float32 in [0, 1] -> SR [B, 1, scale*h, scale*w] in [0, 1]."""

    scale: int
    name: str

    def __call__(self, lr: Tensor) -> Tensor: ...


PRECISIONS = ("fp32", "bf16")


class TorchSR:
    """The EMA generator of a MediVision checkpoint, output clamped to [0, 1] (as SRModule.forward).

    precision "bf16": convolutions under bfloat16 autocast, outputs back in float32. On CPUs with bf16
    instructions (and on GPUs) about twice as fast; python -m medivision.benchmark measures the speed and
    the PSNR change on your machine.
    """

    def __init__(self, path: str | Path, device: str = "cpu", precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
        generator, self.config = load_generator(path)
        self.device = torch.device(device)
        self.generator = generator.to(self.device)
        self.bf16 = precision == "bf16"
        self.scale = int(self.config["scale"])
        self.name = Path(path).name

    @torch.inference_mode()
    def __call__(self, lr: Tensor) -> Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            sr = self.generator(lr.to(self.device, torch.float32))
        return sr.float().clamp_(0.0, 1.0).cpu()


class OnnxSR:
    """An ONNX file written by medivision.export, run with onnxruntime on the CPU (or CUDA when asked)."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        import onnxruntime

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else [
            "CPUExecutionProvider"]
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types for every kind of bad file
            raise ValueError(
                f"{path} cannot be loaded as an ONNX model: {str(error).splitlines()[0]}; "
                f"write one with `python -m medivision.export ckpt=... format=onnx`"
            ) from error
        metadata = self.session.get_modelmeta().custom_metadata_map
        if "scale" not in metadata:
            raise ValueError(f"{path} has no 'scale' metadata: it was not written by medivision.export")
        self.scale = int(metadata["scale"])
        self.config = json.loads(metadata.get("generator", "{}"))
        self.input_name = self.session.get_inputs()[0].name
        self.name = Path(path).name

    def __call__(self, lr: Tensor) -> Tensor:
        array = np.ascontiguousarray(lr.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


def load_model(path: str | Path, device: str = "cpu", precision: str = "fp32") -> SRModel:
    """A checkpoint (.ckpt) or an exported ONNX file (.onnx), chosen by the file name; precision: fp32 | bf16
    (checkpoints only: an ONNX file runs in the precision it was exported in)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt={path} does not exist: pass a .ckpt checkpoint or an exported .onnx file")
    if path.suffix.lower() != ".onnx":
        return TorchSR(path, device, precision)
    if precision != "fp32":
        raise ValueError(f"precision={precision} applies to .ckpt checkpoints; {path.name} is an ONNX file, "
                         "which runs in float32: use precision=fp32 or the checkpoint")
    return OnnxSR(path, device)


def super_resolve(model: SRModel | Callable[[Tensor], Tensor], lr: Tensor, scale: int, tile: int = 256,
                  overlap: int = 32, batch_size: int = 16) -> Tensor:
    """Super-resolve a batch of images of any size and channel count, tiling the large ones.

    lr: float [N, C, h, w] in [0, 1]; every channel goes through the 1-channel network on its own.
    Returns float [N, C, scale*h, scale*w] in [0, 1].

    Images up to `tile` LR pixels on both sides run whole, `batch_size` at a time. Larger ones are cut
    into tile x tile pieces overlapping by `overlap` pixels, so memory stays bounded whatever the image
    size. Where tiles overlap they are blended with weights that are zero within overlap/4 of a tile's
    inner edge (whose outputs saw the tile's zero padding rather than the neighbouring pixels) and
    ramp linearly across the rest. A network with a receptive radius up to overlap/4 LR pixels gives
    exactly the untiled result; CBAM's channel gate pools each tile's own features, so with it tiles
    differ slightly from the whole image, which is why the default tile covers a whole 256x256 slice.
    """
    if overlap < 0 or tile <= 2 * overlap:
        raise ValueError(f"tile={tile} must exceed twice overlap={overlap}, and overlap must be >= 0")
    count, channels, height, width = lr.shape
    planes = lr.reshape(count * channels, 1, height, width)
    if height <= tile and width <= tile:
        out = torch.cat([model(planes[i:i + batch_size]) for i in range(0, len(planes), batch_size)])
    else:
        out = torch.cat([_tiled(model, plane[None], scale, tile, overlap) for plane in planes])
    return out.reshape(count, channels, height * scale, width * scale)


def _tiled(model: Callable[[Tensor], Tensor], lr: Tensor, scale: int, tile: int, overlap: int) -> Tensor:
    """One image [1, 1, h, w] -> [1, 1, scale*h, scale*w], tile by tile (see super_resolve)."""
    height, width = lr.shape[-2:]
    out = torch.zeros(1, 1, height * scale, width * scale)
    weight = torch.zeros_like(out)
    for top in _starts(height, tile, overlap):
        for left in _starts(width, tile, overlap):
            piece = lr[..., top:top + tile, left:left + tile]
            rows = _window(piece.shape[-2], top > 0, top + tile < height, overlap, scale)
            cols = _window(piece.shape[-1], left > 0, left + tile < width, overlap, scale)
            blend = rows[:, None] * cols[None, :]
            region = (..., slice(top * scale, (top + piece.shape[-2]) * scale),
                      slice(left * scale, (left + piece.shape[-1]) * scale))
            out[region] += model(piece) * blend
            weight[region] += blend
    return out / weight


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile offsets covering [0, length): every `tile - overlap` pixels, the last one flush with the end."""
    if length <= tile:
        return [0]
    return list(range(0, length - tile, tile - overlap)) + [length - tile]


def _window(size: int, inner_start: bool, inner_end: bool, overlap: int, scale: int) -> Tensor:
    """Blending weights along one side of a tile, in SR pixels: [size * scale], in [0, 1]."""
    n, margin, ramp = size * scale, overlap // 4 * scale, (overlap - 2 * (overlap // 4)) * scale
    distance = torch.arange(n, dtype=torch.float32)
    weights = torch.ones(n)
    # 0 for the first `margin` pixels from an inner edge, then a linear ramp to 1 over `ramp` pixels;
    # a neighbour's window over the same overlap is the mirror image, so the two add up to one there.
    rising = ((distance - margin + 0.5) / max(ramp, 1)).clamp(0.0, 1.0)
    if inner_start:
        weights = torch.minimum(weights, rising)
    if inner_end:
        weights = torch.minimum(weights, rising.flip(0))
    return weights


def make_consistent(sr: Tensor, lr: Tensor, scale: int, degradation: str = "bicubic",
                    iterations: int = 20, options: DegradationOptions | None = None) -> Tensor:
    """Correct SR so that degrade(SR) matches the measured LR: iterative back-projection of the residual.

    sr: float [N, C, scale*h, scale*w] in [0, 1]; lr: float [N, C, h, w] in [0, 1], the input it was made
    from. Each iteration adds the LR residual lr - degrade(sr), upsampled bicubically, to sr and clamps
    to [0, 1] (Irani and Peleg, 1991). The correction only moves what the LR image measures (the low
    frequencies); the detail the network added on top is kept. Returns a tensor shaped like sr.
    degrade() here is the degradation's noise-free forward model (noise cannot be matched; bicubic for a
    `random` mix), with the kinds' `options`.
    """
    corrected = sr.clone()
    for _ in range(iterations):
        residual = lr - degrade(corrected, scale, degradation, options, noise=False)
        corrected += F.interpolate(residual, scale_factor=scale, mode="bicubic", align_corners=False)
        corrected.clamp_(0.0, 1.0)
    return corrected


def lr_consistency_psnr(sr: Tensor, lr: Tensor, scale: int, degradation: str = "bicubic",
                        options: DegradationOptions | None = None) -> Tensor:
    """PSNR (dB, data range 1) of degrade(sr) against the LR input, per image: [N].

    How far an output strays from what was actually measured: the LR input is all the evidence the
    model had, so a good SR image degrades back to it (bicubic upsampling scores high here too; this
    measures faithfulness, not quality). degrade() is the noise-free forward model, as in make_consistent.
    """
    mse = (degrade(sr, scale, degradation, options, noise=False) - lr).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))
