"""The clinic's install: the wheel built from this checkout, installed without extras into a fresh venv, has no
torch, and its `medivision-enhance` runs from any folder on real PNG, compressed DICOM and NIfTI files, giving
what the torch backend gives."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medivision.data.degradation_options import ForwardModel
from medivision.inference.model_file import BUNDLED_THICK_MODEL, bundled_model_path
from medivision.inference.models import load_model
from medivision.inference.pipeline import Upscaler
from medivision.io import dicom as dicom_files
from medivision.io import nifti as nifti_files
from medivision.io.intensity import IntensityMap
from tests.clinic import ANATOMICAL, thick_file
from tests.training import REPO

# Real scans in the three formats; the DICOMs in three compressed transfer syntaxes.
DICOMS = ("MR_small_jp2klossless.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm")


def real_inputs(folder: Path) -> Path:
    """A folder with a real MR slice as a 16-bit PNG, three compressed DICOMs and a NIfTI volume."""
    folder.mkdir()
    for name in DICOMS:
        shutil.copy(get_testdata_file(name, download=False), folder / name)
    values = pydicom.dcmread(get_testdata_file("MR_small.dcm", download=False)).pixel_array
    Image.fromarray(values.astype(np.uint16)).save(folder / "mr_small.png")
    shutil.copy(ANATOMICAL, folder / "anatomical.nii")
    return folder


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory) -> Path:
    """A fresh venv holding the wheel of this checkout and its core dependencies, pinned by constraints.txt."""
    root = tmp_path_factory.mktemp("clinic")
    source = root / "source"  # the build writes build/ and *.egg-info beside its sources: not in the repository
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "medivision", source / "medivision", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(root / "dist"), str(source)], check=True, timeout=300)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    (wheel,) = (root / "dist").glob("medivision-*.whl")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-c", str(REPO / "constraints.txt"), str(wheel)], check=True, timeout=900)
    return venv


def run(venv: Path, command: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / command), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def stored_values(path: Path) -> np.ndarray:
    """An output file's stored values, by format."""
    if path.suffix == ".png":
        return np.asarray(Image.open(path)).astype(np.float64)
    if path.suffix == ".dcm":
        return pydicom.dcmread(path).pixel_array.astype(np.float64)
    return np.asarray(nib.load(path).dataobj).astype(np.float64)


@pytest.mark.slow  # builds a wheel and installs it with its dependencies into a fresh venv: a minute or two
def test_the_core_install_enhances_real_files_without_torch_as_the_torch_backend_does(core_venv, tmp_path):
    python = str(core_venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0
    assert subprocess.run([python, "-c", "import medivision.enhance, sys; assert 'torch' not in sys.modules"],
                          cwd=tmp_path).returncode == 0
    inputs = real_inputs(tmp_path / "scans")
    elsewhere = tmp_path / "elsewhere"  # no conf/ and no checkout here: the configs come from the package
    elsewhere.mkdir()
    result = run(core_venv, "medivision-enhance", f"input={inputs}", f"output={tmp_path / 'core'}", "ensemble=8",
                 "uncertainty=true", cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "with the bundled general model general.onnx" in result.stdout
    assert "enhanced 5 files" in result.stdout and "skipped" not in result.stdout

    # the torch backend, on the bundled model's safetensors twin, in this (full) install
    reference = subprocess.run([sys.executable, "-m", "medivision.enhance", f"input={inputs}",
                                f"output={tmp_path / 'torch'}", "ensemble=8", "uncertainty=true",
                                f"ckpt={bundled_model_path('.safetensors')}"], capture_output=True, text=True,
                               cwd=elsewhere, timeout=600)
    assert reference.returncode == 0, reference.stderr[-2000:]
    outputs = sorted(path.relative_to(tmp_path / "core") for path in (tmp_path / "core").rglob("*") if path.is_file())
    assert len(outputs) == 10  # each input and its uncertainty map
    for relative in outputs:
        core, torch_values = stored_values(tmp_path / "core" / relative), stored_values(tmp_path / "torch" / relative)
        assert core.shape == torch_values.shape
        # the unit images agree to 1e-5 (test below); stored integers may round the other way where a value sits
        # on a rounding boundary
        assert np.abs(core - torch_values).max() <= 1, relative
        assert (core == torch_values).mean() > 0.99, relative


@pytest.mark.slow
def test_the_core_install_makes_thick_slices_isotropic_with_the_bundled_prior_as_torch_does(core_venv, tmp_path):
    source, _ = thick_file(tmp_path / "thick.nii.gz")
    result = run(core_venv, "medivision-enhance", f"input={source}", f"output={tmp_path / 'core.nii.gz'}",
                 "through_plane=true", cwd=tmp_path)  # adapt=auto: no PyTorch here, so the prior alone, on ONNX
    assert result.returncode == 0, result.stderr[-2000:]
    assert "with the bundled general_thick model general_thick.onnx" in result.stdout
    reference = subprocess.run([sys.executable, "-m", "medivision.enhance", f"input={source}",
                                f"output={tmp_path / 'torch.nii.gz'}", "through_plane=true", "adapt=false",
                                f"ckpt={bundled_model_path('.safetensors', BUNDLED_THICK_MODEL)}"],
                               capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert reference.returncode == 0, reference.stderr[-2000:]
    core, torch_values = stored_values(tmp_path / "core.nii.gz"), stored_values(tmp_path / "torch.nii.gz")
    assert core.shape == torch_values.shape == (33, 40, 25)
    assert np.abs(core - torch_values).max() <= 1 and (core == torch_values).mean() > 0.99
    refused = run(core_venv, "medivision-enhance", f"input={source}", f"output={tmp_path / 'adapted.nii.gz'}",
                  "through_plane=true", "adapt=true", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("medivision.enhance: adapt=true fine-tunes the model with PyTorch, which is not "
                                      "installed: pip install 'medivision[train]', or pass adapt=false")


@pytest.mark.slow
def test_the_core_install_names_the_train_extra_and_refuses_bad_model_files_in_one_line(core_venv, tmp_path):
    result = run(core_venv, "medivision-train", cwd=tmp_path)
    assert result.returncode == 1
    assert re.fullmatch(r"medivision.train: needs PyTorch and the rest of the \[train\] extra \((lightning|torch) "
                        r"is not installed\): pip install 'medivision\[train\]'", result.stderr.strip())
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "slice.png")
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"PK not really")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(bundled_model_path().read_bytes()[:100_000])
    foreign = tmp_path / "foreign.onnx"
    import onnx

    proto = onnx.load(str(bundled_model_path()))
    del proto.metadata_props[:]
    onnx.save(proto, str(foreign))
    for ckpt, message in ((checkpoint, "is a PyTorch file, and PyTorch is not installed (torch is missing): pip "
                                       "install 'medivision[train]', or pass an .onnx file"),
                          (truncated, "cannot be loaded as an ONNX model (truncated or not ONNX)"),
                          (foreign, "is an ONNX model without MediVision's metadata")):
        result = run(core_venv, "medivision-enhance", f"input={tmp_path / 'slice.png'}",
                     f"output={tmp_path / 'out.png'}", f"ckpt={ckpt}", cwd=tmp_path)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert message in result.stderr and str(ckpt) in result.stderr
    assert not (tmp_path / "out.png").exists()


def test_the_onnx_and_torch_backends_agree_to_1e5_on_real_files():
    """The bundled model as ONNX (ONNX Runtime) and as safetensors (torch), through the one pipeline with the
    8-fold ensemble, on unit images read from real DICOM and NIfTI files."""
    onnx_model, torch_model = load_model(None), load_model(bundled_model_path(".safetensors"))
    forward = ForwardModel.of(onnx_model.degradation)
    _, stored = dicom_files.read_dicom(get_testdata_file("MR_small_RLE.dcm", download=False))
    dicom_unit = IntensityMap.fit(stored).to_unit(stored)
    _, volume, _ = nifti_files.read_unit(ANATOMICAL, "minmax")
    nifti_unit = nifti_files.to_slices(volume, 2)[10:14]
    for unit in (dicom_unit, nifti_unit):
        core = Upscaler(onnx_model, forward, ensemble=8)(unit)
        reference = Upscaler(torch_model, forward, ensemble=8)(unit)
        assert np.abs(core.sr - reference.sr).max() < 1e-5
        assert np.abs(core.spread - reference.spread).max() < 1e-5
        assert np.allclose(core.lr_psnr, reference.lr_psnr, atol=1e-3)
