"""`python -m medivision.export ckpt=PATH format=onnx|torchscript|safetensors`: the EMA generator as one file.

The exported network is SRModule.forward: the EMA generator with its output clamped to [0, 1], input
float32 [B, 1, h, w] in [0, 1] with any batch size, height and width, output [B, 1, scale*h, scale*w].
safetensors writes a MediVision model file (medivision.inference.model_file: the weights and how the model
was made), which enhance and evaluate read as they read checkpoints; ONNX files carry the same metadata, and
run on the core install (ONNX Runtime, no torch). The bundled general model ships as both. `ckpt` is a
checkpoint or a model file.
After writing, the file is run (onnxruntime, torch.jit.load, or read back as a model file) next to PyTorch
on random inputs of two sizes; the largest absolute difference is printed and written to
`<output>.check.json`, and the export fails when it exceeds `tolerance`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from medivision.io.command_line import command_line
from medivision.io.errors import one_line_errors, train_extra

with train_extra("medivision.export"):
    import hydra
    import numpy as np
    import torch
    from omegaconf import DictConfig
    from torch import nn

    from medivision.inference.checkpoints import load_generator
    from medivision.inference.model_file import model_metadata, read_model_file, write_model_file
    from medivision.inference.onnx import OnnxSR
    from medivision.inference.onnx_export import write_onnx
    from medivision.nets import ClampedGenerator

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}


@command_line("export", __doc__)
@hydra.main(version_base="1.3", config_path="conf", config_name="export")
@one_line_errors("medivision.export")
def main(cfg: DictConfig) -> None:
    check = export(cfg)
    sizes = ", ".join(f"{size}: {diff:.2e}" for size, diff in check["max_abs_diff"].items())
    print(f"wrote {check['file']} ({check['format']}, scale {check['scale']})\n"
          f"max |exported - PyTorch| on random inputs (LR size: difference): {sizes}\n"
          f"check written to {check['file']}.check.json")


def export(cfg: DictConfig) -> dict:
    """Export cfg.ckpt's EMA generator to cfg.format, check it, and return the check (see the module doc)."""
    if cfg.format not in FORMATS:
        raise ValueError(f"format={cfg.format!r} is not one of {', '.join(FORMATS)}")
    checkpoint = Path(cfg.ckpt).expanduser()
    trained = load_generator(checkpoint)
    config, intensity = trained.config, trained.intensity
    model = ClampedGenerator(trained.network).eval()
    output = Path(cfg.output).expanduser() if cfg.output else checkpoint.with_suffix(FORMATS[cfg.format])
    if output.exists() and not cfg.overwrite:
        raise ValueError(f"output {output} already exists: choose another output=, or pass overwrite=true")
    output.parent.mkdir(parents=True, exist_ok=True)
    # a model file passes on the checkpoint it came from, so that its ONNX twin says the same of itself
    source = read_model_file(checkpoint)[1]["checkpoint"] if checkpoint.suffix == ".safetensors" else checkpoint.name
    metadata = model_metadata(config, intensity, trained.provenance, source)
    if cfg.format == "onnx":
        write_onnx(model, output, metadata, cfg.opset)
        onnx_model = OnnxSR(output)
        run = lambda lr: torch.from_numpy(onnx_model(lr.numpy()))  # noqa: E731
    elif cfg.format == "safetensors":
        write_model_file({key: value.numpy() for key, value in trained.network.state_dict().items()}, metadata,
                         output)
        run = ClampedGenerator(load_generator(output).network).eval()
    else:
        _write_torchscript(model, output)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
            run = torch.jit.load(str(output), map_location="cpu")
    check = {
        "format": cfg.format, "file": str(output), "checkpoint": str(checkpoint), "scale": config["scale"],
        "generator": config, "intensity": intensity, "tolerance": cfg.tolerance,
        "max_abs_diff": _compare(model, run, [tuple(size) for size in cfg.check_sizes], cfg.seed),
        "torch": torch.__version__,
    }
    Path(f"{output}.check.json").write_text(json.dumps(check, indent=2) + "\n")
    worst = max(check["max_abs_diff"].values())
    if worst > cfg.tolerance:
        raise ValueError(f"{output} differs from PyTorch by up to {worst:.2e} > tolerance={cfg.tolerance}: "
                         f"do not use it (see {output}.check.json)")
    return check


def _write_torchscript(model: nn.Module, output: Path) -> None:
    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, but TorchScript is still what LibTorch loads.
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        traced = torch.jit.trace(model, torch.rand(1, 1, 32, 32))
        traced.save(str(output))


@torch.inference_mode()
def _compare(model: nn.Module, exported, sizes: list[tuple[int, int]], seed: int) -> dict[str, float]:
    """Largest |exported - PyTorch| on a random batch of two images per LR size, keyed "HxW"."""
    generator = torch.Generator().manual_seed(seed)
    differences = {}
    for height, width in sizes:
        lr = torch.rand(2, 1, height, width, generator=generator)
        expected = model(lr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
            actual = exported(lr)
        if actual.shape != expected.shape:
            raise ValueError(f"the exported model gives shape {tuple(actual.shape)} for LR {height}x{width}, "
                             f"PyTorch {tuple(expected.shape)}")
        differences[f"{height}x{width}"] = float(np.abs(actual.numpy() - expected.numpy()).max())
    return differences


if __name__ == "__main__":
    main()
