"""Measures the clinic install against the full one (experiments/clinic/README.md).

Run from the repository root with the project's .venv, on a quiet machine:

    .venv/bin/python experiments/clinic/measure.py /tmp/clinic-measure

It builds the wheel of this checkout, installs it into two fresh venvs from the package cache (core; core plus
[train]) and records their sizes and install times; the start-up of `medivision-enhance --help` and of enhance on
one PNG; enhance on a folder of 100 slices and on a 256x256x40 NIfTI volume on both backends (ONNX Runtime in the
core venv, torch on the bundled model's .safetensors twin in the full one), one pass and ensemble=8, at 1 and 2
threads (the volume's 8 passes at 2 threads only: at 1 thread they take about 14 minutes a backend, 8 times its
single pass); the model alone at batch 16 (ONNX Runtime fp32 and int8, torch fp32 and bf16); and the real-scan
benchmark's gain over bicubic with the fp32 and the int8 ONNX files. Each figure is added to OUT/results.json as
it is measured, and a rerun with the same OUT measures only what is not there yet.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
OUT = Path(sys.argv[1]).resolve()


RESULTS = OUT / "results.json"
SKIPPED = ("NIfTI 256x256x40, ensemble=8, threads=1",)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if "installs" not in results:
        record(results, "installs", installs())
    core, full = OUT / "core" / "bin", OUT / "full" / "bin"
    png, folder, volume = inputs()
    if "start_up_s" not in results:
        record(results, "start_up_s", {
            "enhance --help": median_seconds([str(core / "medivision-enhance"), "--help"]),
            "enhance one PNG": median_seconds([str(core / "medivision-enhance"), f"input={png}",
                                               f"output={OUT / 'one_sr.png'}", "overwrite=true"]),
        })
    enhance_times(results, core, full, folder, volume)
    if "model_images_per_s" not in results:
        record(results, "model_images_per_s", model_speed())
    for name, path in (("onnx fp32", bundled(".onnx")), ("onnx int8", OUT / "general.int8.onnx")):
        if name not in results.setdefault("real_scans", {}):
            results["real_scans"][name] = gate(path)
            record(results, "real_scans", results["real_scans"])
    print(json.dumps(results, indent=2))


def record(results: dict, key: str, value) -> None:
    results[key] = value
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def installs() -> dict:
    """Install time from the package cache (warm: the packages were downloaded before) and size of each venv."""
    source = OUT / "source"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "medivision", source / "medivision", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(OUT / "dist"), str(source)], check=True)
    wheel = next((OUT / "dist").glob("medivision-*.whl"))
    measured = {}
    for name, requirement in (("core", str(wheel)), ("full", f"{wheel}[train]")):
        venv = OUT / name
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        start = time.perf_counter()
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "-c", str(REPO / "constraints.txt"), requirement], check=True)
        seconds = time.perf_counter() - start
        size = subprocess.run(["du", "-sm", str(venv)], capture_output=True, text=True).stdout.split()[0]
        tools = subprocess.run(["du", "-smc", *map(str, (venv / "lib").glob("python*/site-packages/pip*")),
                                *map(str, (venv / "lib").glob("python*/site-packages/setuptools*"))],
                               capture_output=True, text=True).stdout.split()[-2]
        measured[name] = {"pip_install_s": round(seconds, 1), "size_mb": int(size), "of_which_pip_setuptools_mb":
                          int(tools)}
    return measured


def median_seconds(command: list[str], repeats: int = 5) -> float:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=OUT, check=True, capture_output=True)
        seconds.append(time.perf_counter() - start)
    return round(statistics.median(seconds), 2)


def inputs() -> tuple[Path, Path, Path]:
    """One 64x64 8-bit PNG, a folder of 100 such slices and a 256x256x40 int16 NIfTI volume, cut from the MNI152
    template (nilearn), which is real anatomy at 1 mm."""
    import nibabel as nib
    from nilearn import datasets
    from scipy.ndimage import zoom

    template = np.asarray(datasets.load_mni152_template(resolution=1).get_fdata(), np.float32)
    template /= template.max()
    folder = OUT / "slices"
    folder.mkdir(exist_ok=True)
    for index in range(100):
        plane = zoom(template[:, :, 40 + index], 64 / template.shape[0], order=1)[:64, :64]
        Image.fromarray(np.rint(plane * 255).astype(np.uint8)).save(folder / f"slice{index:03d}.png")
    block = template[:, :, 60:100]
    volume = zoom(block, (256 / block.shape[0], 256 / block.shape[1], 1), order=1)[:256, :256]
    path = OUT / "volume.nii.gz"
    nib.save(nib.Nifti1Image(np.rint(volume * 1000).astype(np.int16), np.diag([0.76, 0.89, 1.0, 1.0])), path)
    return folder / "slice000.png", folder, path


def enhance_times(results: dict, core: Path, full: Path, folder: Path, volume: Path) -> None:
    """Seconds enhance reports for its work (start-up excluded), per backend, input, ensemble and threads."""
    times = results.setdefault("enhance_s", {})
    for backend, command in (("onnx", [str(core / "medivision-enhance")]),
                             ("torch", [str(full / "medivision-enhance"), f"ckpt={bundled('.safetensors')}"])):
        for label, source in (("100 slices 64x64", folder), ("NIfTI 256x256x40", volume)):
            for ensemble in (1, 8):
                for threads in (1, 2):
                    key = f"{backend}, {label}, ensemble={ensemble}, threads={threads}"
                    if key in times or key.removeprefix(f"{backend}, ") in SKIPPED:
                        continue
                    target = OUT / f"sr_{backend}_{ensemble}_{threads}" / source.name
                    result = subprocess.run([*command, f"input={source}", f"output={target}", f"ensemble={ensemble}",
                                             f"threads={threads}", "overwrite=true"], cwd=OUT, check=True,
                                            capture_output=True, text=True)
                    seconds = float(result.stdout.split(" in ")[1].split(" s ")[0])
                    times[key] = seconds
                    record(results, "enhance_s", times)
                    print(key, seconds, flush=True)


def bundled(suffix: str) -> Path:
    return REPO / "medivision" / "weights" / f"general{suffix}"


def model_speed() -> dict:
    """Images/s of the bundled model alone on 64x64 LR slices at batch 16: ONNX Runtime fp32 and int8 (static QDQ,
    calibrated on 64 slices of the MNI152 template, never on the real scans it is judged on), torch fp32 and bf16;
    at 1 and 2 threads; the int8 file is written to OUT."""
    import onnx
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from medivision.inference.models import load_model

    rng = np.random.default_rng(0)
    template = np.stack([np.asarray(Image.open(path), np.float32) / 255 for path in sorted((OUT / "slices").glob("*"))])
    calibration = template[rng.permutation(len(template))[:64], None]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"lr": calibration[i:i + 8]} for i in range(0, len(calibration), 8)])

        def get_next(self):
            return next(self.batches, None)

    int8 = OUT / "general.int8.onnx"
    quantize_static(str(bundled(".onnx")), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    proto = onnx.load(str(int8))  # the quantizer drops the metadata: MediVision's is copied over
    del proto.metadata_props[:]
    proto.metadata_props.extend(onnx.load(str(bundled(".onnx"))).metadata_props)
    onnx.save(proto, str(int8))
    batch = np.ascontiguousarray(template[:16, None])
    speeds = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, model in (("onnx fp32", load_model(bundled(".onnx"), threads=threads)),
                            ("onnx int8", load_model(int8, threads=threads)),
                            ("torch fp32", load_model(bundled(".safetensors"))),
                            ("torch bf16", load_model(bundled(".safetensors"), precision="bf16"))):
            model(batch)
            start, rounds = time.perf_counter(), 5
            for _ in range(rounds):
                model(batch)
            speeds[f"{name}, threads={threads}"] = round(rounds * len(batch) / (time.perf_counter() - start), 1)
            print(name, threads, speeds[f"{name}, threads={threads}"], flush=True)
    return speeds


def gate(model: Path) -> dict:
    """The real-scan benchmark's gain over bicubic in PSNR (dB) per group and LR kind, one pass."""
    folder = OUT / f"gate_{model.stem}"
    subprocess.run([sys.executable, "-m", "medivision.evaluate", "data=real_scans", f"ckpt={model}",
                    f"hydra.run.dir={folder}"], cwd=REPO, check=True, capture_output=True)
    report = (folder / "report.md").read_text()
    return {"report": str(folder / "report.md"), "gate": report.split("\n## ")[1] if "\n## " in report else report}


if __name__ == "__main__":
    main()
