"""Bad data and bad config values: a counted skip, or a one-line error naming the file or key, before data is read;
and every command's way of ending on bad input: one line, exit status 1, no traceback.

The cases test_data.py already covers (corrupt JPEG, empty file, non-image, 16-bit PNG, wrong data.root, a
missing or empty class folder) are listed in docs/reliability.md; these are the rest.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from omegaconf import OmegaConf
from PIL import Image

from medivision.data.decode import read_gray, to_hr
from medivision.data.settings import data_module
from medivision.data.sources import DataError
from medivision.inference.torch_model import inference_device
from medivision.io.errors import one_line_errors
from medivision.train import train
from medivision.training.launching import check_trainer_arguments
from tests.conftest import brain_like
from tests.training import REPO, compose_train, tiny

# Report of an SRDataModule set up in a fresh process: what was skipped and why, and the split sizes.
SETUP_REPORT = """
import json, sys, warnings
from medivision.data.settings import data_module
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    dm = data_module(source="kaggle", root=sys.argv[1], cache_dir=sys.argv[2])
    dm.setup()
print(json.dumps({"skipped": dm.num_skipped, "sizes": dm.sizes,
                  "warnings": [str(w.message) for w in caught if "skipped" in str(w.message)]}))
"""


def setup_without_root_powers(root, cache) -> dict:
    """Set up the Kaggle data in a subprocess that file permissions apply to, even when tests run as root.

    Root reads every file whatever its mode; dropping the capabilities that allow it (setpriv) makes a
    chmod 000 file as unreadable to root as to anyone else.
    """
    command = [sys.executable, "-c", SETUP_REPORT, str(root), str(cache)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        caps = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--", *command]
    result = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_unreadable_file_is_skipped_with_the_reason_and_the_rest_is_used(kaggle_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(kaggle_root, root)
    locked = root / "Training" / "glioma" / "locked.jpg"
    shutil.copyfile(root / "Training" / "glioma" / "Tr-gl_0001.jpg", locked)
    locked.chmod(0)
    report = setup_without_root_powers(root, tmp_path / "cache")
    assert report["skipped"] == 1
    (message,) = report["warnings"]
    assert f"skipped 1 of 35 files that could not be read: {locked} (PermissionError: [Errno 13] Permission denied" \
           in message
    assert sum(report["sizes"].values()) == 33  # every readable image is used


def test_rgba_png_uses_the_luminance_and_drops_alpha(tmp_path):
    gray = brain_like(np.random.default_rng(0), 100, 100)
    rgba = np.dstack([gray, gray, gray, np.where(gray > 0, 255, 0).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    assert np.array_equal(read_gray(tmp_path / "rgba.png"), read_gray(tmp_path / "gray.png"))


@pytest.mark.slow
def test_tiny_huge_and_non_square_images_become_128_hr(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(brain_like(rng, 12, 9)).save(folder / "tiny.png")  # smaller than 32 LR pixels, even
    yy, xx = np.mgrid[0:4000, 0:4000]
    Image.fromarray(((yy + xx) % 256).astype(np.uint8)).save(folder / "huge.png")  # 16 megapixels
    Image.fromarray(brain_like(rng, 300, 120)).save(folder / "wide.png")
    for name in ("one", "two", "three"):
        Image.fromarray(brain_like(rng, 128, 128)).save(folder / f"{name}.png")
    dm = data_module(source="folder", root=str(folder), cache_dir=str(tmp_path / "cache"), val_fraction=0.2,
                      test_fraction=0.2)
    dm.setup()
    assert dm.num_skipped == 0 and sum(dm.sizes.values()) == 6
    hr = {path.split("/")[-1]: image for s in (dm.train_set, dm.val_set, dm.test_set) for path, image in
          zip(s.paths, s.hr)}
    assert all(image.shape == (1, 128, 128) for image in hr.values())
    wide = hr["wide.png"][0].numpy()
    assert wide[:30].max() == 0 and wide[-30:].max() == 0  # padded to a square above and below
    assert np.array_equal(hr["huge.png"][0].numpy(), to_hr(read_gray(folder / "huge.png")))


def test_folder_without_images(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "protocol.txt").write_text("T1 axial\n")
    with pytest.raises(DataError, match=r"data.root=\S*notes holds no images \(.bmp, .jpeg, .jpg"):
        data_module(source="folder", root=str(tmp_path / "notes"), cache_dir=str(tmp_path)).setup()


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.loss.perceptual.weight=-0.01"], "model.loss.perceptual.weight=-0.01 must be >= 0"),
    (["model.generator.attention=se"], "model.generator.attention='se' is not one of none, channel, spatial, cbam"),
    (["data.scale=3"], "data.hr_size=128 is not divisible by data.scale=3"),
    (["data.scale=3", "data.hr_size=96"], r"model.generator.scale=3 must be a power of two \(1, 2, 4, 8\)"),
    (["data.degradation=jpeg"], "data.degradation='jpeg' is not one of bicubic, kspace, kspace_noise"),
    (["data.degradation_options.noise=2"], r"data.degradation_options.noise=2 must be a noise std in \[0, 1\)"),
    (["model.max_bad_steps=0"], "model.max_bad_steps=0 must be at least 1"),
    (["model.ema_decay=1.5"], r"model.ema_decay=1.5 must be in \[0, 1\)"),
])
def test_bad_config_values_stop_the_run_before_any_data_is_read(overrides, message, kaggle_root, tmp_path):
    # a cache folder would mean data was decoded first (finding the files, which checks data.root, comes first)
    cfg = compose_train(tiny(kaggle_root, tmp_path / "run", *overrides, "logger=csv"))
    with pytest.raises(Exception, match=message):
        train(cfg)
    assert not (tmp_path / "run" / "cache").exists() and not (tmp_path / "run" / "csv").exists()


# Every command on bad input. Each case costs a fresh interpreter importing torch (and Lightning): 3-10 s.


class RunsCode:
    """A pickle that would run code when loaded without weights_only: it creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def write_bad_inputs(kaggle_root: Path, tmp: Path) -> None:
    """The files the cases of bad_inputs(kaggle_root, tmp) point at."""
    torch.save({"state_dict": {}, "payload": RunsCode(tmp / "code-ran")}, tmp / "hostile.ckpt")
    with open(tmp / "hostile.pkl", "wb") as file:  # a bare pickle, not torch's zip: torch warns about it
        pickle.dump({"state_dict": {}, "payload": RunsCode(tmp / "code-ran")}, file, protocol=4)
    shutil.copytree(kaggle_root / "Training", tmp / "without_test" / "Training")
    shutil.copytree(kaggle_root, tmp / "empty_class")
    for image in (tmp / "empty_class" / "Testing" / "pituitary").iterdir():
        image.unlink()
    Image.fromarray(brain_like(np.random.default_rng(0), 40, 40)).save(tmp / "slice.png")


def bad_inputs(kaggle_root: Path, tmp: Path) -> dict[str, tuple[list[str], str]]:
    """Case -> (the command line after `python -m`, the one line it must print), for the files write_bad_inputs
    puts under `tmp`. A message ending in "..." is the start of the line: the rest is torch's own wording."""
    hostile = tmp / "hostile.ckpt"
    layout = "expected Training/ and Testing/, each with class folders glioma, meningioma, notumor, pituitary"

    def refused(path: Path) -> str:
        return (f"{path} cannot be loaded as a checkpoint (truncated, not a checkpoint, or it contains code "
                "objects, which are refused): ...")

    def train(root, *extra: str) -> list[str]:
        return ["medivision.train", *tiny(root, tmp / "run", "logger=none", *extra)]

    return {
        "train, data.root not set": (
            train("null"), "medivision.train: data.root is not set: data.source=kaggle reads its files from "
            "data.root; pass data.root=/path/to/the/data (for the Kaggle set: the folder holding Training/ and "
            "Testing/, which MEDIVISION_DATA=/path/to/the/data also sets)"),
        "train, data.root missing": (
            train(tmp / "nowhere"), f"medivision.train: data.root={tmp / 'nowhere'} does not exist: point "
            "data.root at the folder holding Training/ and Testing/ (Kaggle 'Brain Tumor MRI Dataset')"),
        "train, no Testing/": (
            train(tmp / "without_test"),
            f"medivision.train: data.root={tmp / 'without_test'} has no Testing/ folder: {layout}"),
        "train, data.root one level too deep": (
            train(kaggle_root / "Training"), f"medivision.train: data.root={kaggle_root / 'Training'} has no "
            f"Training/ or Testing/ folder: {layout}; did you mean data.root={kaggle_root}?"),
        "train, class folder without images": (
            train(tmp / "empty_class"), f"medivision.train: {tmp / 'empty_class' / 'Testing' / 'pituitary'} holds "
            "no images (.bmp, .jpeg, .jpg, .png, .tif, .tiff): add its images or fix data.root"),
        "train, ckpt_path missing": (
            train(kaggle_root, f"ckpt_path={tmp / 'last.ckpt'}"), f"medivision.train: checkpoint "
            f"{tmp / 'last.ckpt'} does not exist: pass a .ckpt file that medivision.train wrote"),
        "train, ckpt_path hostile": (
            train(kaggle_root, f"ckpt_path={hostile}"), f"medivision.train: {refused(hostile)}"),
        "train, VGG19 weights missing": (
            train(kaggle_root, f"model.loss.perceptual.weights={tmp / 'vgg19.pth'}"),
            f"medivision.train: model.loss.perceptual.weights='{tmp / 'vgg19.pth'}': no such file. Use "
            "'imagenet', 'random' or the path of a VGG19 state dict."),
        "train, trainer.max_epochs=abc": (
            train(kaggle_root, "trainer.max_epochs=abc"), "medivision.train: trainer.max_epochs='abc' is not "
            "accepted: lightning.Trainer takes max_epochs: Optional[int]"),
        "evaluate, hostile ckpt": (
            ["medivision.evaluate", f"ckpt={hostile}", f"data.root={kaggle_root}", f"data.cache_dir={tmp}",
             f"hydra.run.dir={tmp / 'evaluate'}"], f"medivision.evaluate: {refused(hostile)}"),
        "enhance, device=tpu": (
            ["medivision.enhance", f"ckpt={hostile}", f"input={tmp / 'slice.png'}", f"output={tmp / 'sr.png'}",
             "device=tpu"], "medivision.enhance: device='tpu' is not one of cpu, cuda (cuda:N for the Nth GPU)"),
        "export, hostile bare pickle": (
            ["medivision.export", f"ckpt={tmp / 'hostile.pkl'}"], f"medivision.export: {refused(tmp / 'hostile.pkl')}"),
        "compare, no such runs": (
            ["medivision.compare", str(tmp / "sweep"), "--runs-root", str(tmp)],
            f"medivision.compare: no runs found for '{tmp / 'sweep'}': it is not a folder, no local W&B run under "
            f"{tmp}/ has that group; log in to W&B (wandb login) to read groups from the server"),
        "degradation_matrix, runs missing": (
            ["medivision.degradation_matrix", f"runs={tmp / 'sweep'}", f"hydra.run.dir={tmp / 'matrix'}"],
            f"medivision.degradation_matrix: runs={tmp / 'sweep'} does not exist: pass the folder of a "
            "+experiment=degradation_ablation multirun, run folders or .ckpt files"),
        "benchmark, unknown section": (
            ["medivision.benchmark", "benchmark.sections=[speed]", f"hydra.run.dir={tmp / 'benchmark'}"],
            "medivision.benchmark: benchmark.sections=['speed']: ['speed'] not among training, inference, data"),
    }


def run_command(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m <command>` as a user runs it: no MEDIVISION_DATA, no HYDRA_FULL_ERROR, W&B offline."""
    kept = {key: value for key, value in os.environ.items() if key not in ("MEDIVISION_DATA", "HYDRA_FULL_ERROR")}
    return subprocess.run([sys.executable, "-m", *command], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**kept, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline", **env})


@pytest.fixture(scope="module")
def bad_input_dir(kaggle_root, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("bad_inputs")
    write_bad_inputs(kaggle_root, tmp)
    return tmp


@pytest.mark.slow  # 15 fresh interpreters: about a minute
@pytest.mark.parametrize("case", list(bad_inputs(Path("data"), Path("tmp"))))
def test_every_command_ends_bad_input_with_one_line(case, kaggle_root, bad_input_dir):
    command, message = bad_inputs(kaggle_root, bad_input_dir)[case]
    result = run_command(command, bad_input_dir)
    # stdout and stderr together: the message is all the command printed, no warning or library line beside it
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    line = lines[0]
    assert line.startswith(message.removesuffix("...")) if message.endswith("...") else line == message
    assert result.returncode == 1
    assert not (bad_input_dir / "code-ran").exists()  # the hostile checkpoint was refused, never run
    assert not (bad_input_dir / "run" / "cache").exists()  # nothing was decoded


@pytest.mark.slow
def test_hydra_full_error_shows_the_traceback(bad_input_dir):
    command, message = bad_inputs(Path("unused"), bad_input_dir)["enhance, device=tpu"]
    result = run_command(command, bad_input_dir, HYDRA_FULL_ERROR="1")
    assert result.returncode == 1
    assert "Traceback (most recent call last):" in result.stderr
    assert result.stderr.splitlines()[-1] == "ValueError: " + message.removeprefix("medivision.enhance: ")


def test_user_errors_become_one_line_and_bugs_keep_their_traceback(capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    @one_line_errors("medivision.x")
    def wrapped(error: Exception) -> None:
        raise error

    constructor = DataError("data.root=/d has no Testing/ folder:\n  expected Training/ and Testing/")
    try:
        raise InstantiationException("Error in call to target 'SRDataModule'") from constructor
    except InstantiationException as error:
        instantiated = error
    for error in (instantiated, FileNotFoundError("weights=/w.pth: no such file"), PermissionError("cannot read")):
        with pytest.raises(SystemExit) as stop:
            wrapped(error)
        assert stop.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        "medivision.x: data.root=/d has no Testing/ folder: expected Training/ and Testing/",
        "medivision.x: weights=/w.pth: no such file", "medivision.x: cannot read"]
    for bug in (KeyError("generator"), RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
                InstantiationException("Error in call to target 'Trainer'")):
        with pytest.raises(type(bug)):
            wrapped(bug)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(FileNotFoundError):
        wrapped(FileNotFoundError("weights=/w.pth: no such file"))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("device", "message"), [
    ("tpu", "device='tpu' is not one of cpu, cuda"),
    ("xla", "device='xla' is not one of cpu, cuda"),  # a device type torch knows, but not one MediVision runs on
    ("gpu0", "device='gpu0' is not one of cpu, cuda"),
    # a GPU this machine lacks
    ("cuda:64", r"this machine has \d CUDA GPU" if torch.cuda.is_available() else "finds no CUDA GPU on this machine"),
])
def test_bad_devices_are_named_before_any_model_is_loaded(device, message):
    with pytest.raises(ValueError, match=message):
        inference_device(device)
    assert inference_device("cpu") == torch.device("cpu")


def test_trainer_values_lightning_would_trip_over_later(kaggle_root, tmp_path):
    cfg = compose_train(tiny(kaggle_root, tmp_path, "trainer.devices=auto", "trainer.precision=bf16-mixed"))
    check_trainer_arguments(OmegaConf.to_container(cfg.trainer, resolve=True))  # the shipped config passes
    with pytest.raises(ValueError, match=r"^trainer.max_epochs='abc' is not accepted: lightning.Trainer takes "
                                         r"max_epochs: Optional\[int\]; trainer.precision=17 is not accepted"):
        check_trainer_arguments({"max_epochs": "abc", "precision": 17, "limit_val_batches": 0.5})
    with pytest.raises(ValueError, match="trainer.max_epoch is not an argument of lightning.Trainer"):
        check_trainer_arguments({"max_epoch": 3})
