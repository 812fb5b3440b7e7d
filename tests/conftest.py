"""Shared fixtures: small data sets on disk in the layouts MediVision reads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medivision.training.notices import silence_third_party_notices
from tests.training import REPO, tiny

KAGGLE_CLASSES = ("glioma", "meningioma", "notumor", "pituitary")
TRAIN_PER_CLASS = 6
TEST_PER_CLASS = 2
# (width, height): non-square, square, smaller than 128 in both directions, larger than 128
KAGGLE_SIZES = ((150, 170), (200, 200), (90, 120), (256, 256), (170, 150))


# What installing and running pytest itself leave in the repository; tests may leave nothing else there.
_OWN_FILES = (".venv/", ".pytest_cache/", ".ruff_cache/", "medivision.egg-info/")


def _repository_changes() -> set[str] | None:
    """Untracked and ignored paths in the repository (git's view), apart from _OWN_FILES; None outside git.
    Edits to tracked files are not counted: those are the developer's, made while the tests run."""
    result = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        return None
    paths = {line[3:] for line in result.stdout.splitlines() if line[:2] in ("??", "!!")}  # new files only
    return {path for path in paths if not path.startswith(_OWN_FILES) and "__pycache__/" not in path}


@pytest.fixture(autouse=True)
def third_party_notices_silenced() -> None:
    """What the commands silence (pytest resets warning filters for every test, so here, in each), and
    Lightning's hint that a tiny test set has fewer batches than the logging interval, which it has on purpose."""
    silence_third_party_notices()
    warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller than the logging")


@pytest.fixture(scope="session", autouse=True)
def repository_untouched():
    """Fails the session when a test wrote inside the repository (run outputs, caches, Hydra run directories)."""
    before = _repository_changes()
    yield
    after = _repository_changes()
    if before is not None and after is not None:
        assert after <= before, f"tests wrote inside the repository: {sorted(after - before)}"


@pytest.fixture(scope="session", autouse=True)
def wandb_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """W&B's own data, cache, config and artifact folders under the session's tmp folder, not ~/.local,
    ~/.cache and ~/.config. Set in os.environ, so the commands that tests start as subprocesses (which pass
    os.environ on) use them too. Returns the folder that holds them."""
    root = tmp_path_factory.mktemp("wandb_home")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("DATA", "CACHE", "CONFIG", "ARTIFACT"):
            patch.setenv(f"WANDB_{name}_DIR", str(root / name.lower()))
        yield root


def brain_like(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A synthetic axial slice: bright skull ring, textured brain, a brighter blob. uint8 [height, width]."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = height / 2 + rng.uniform(-4, 4), width / 2 + rng.uniform(-4, 4)
    ry, rx = height * rng.uniform(0.38, 0.46), width * rng.uniform(0.34, 0.44)
    radius = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    stripes = 20 * np.sin(xx / rng.uniform(2, 5)) * np.cos(yy / rng.uniform(2, 5))
    texture = stripes + rng.normal(0, 12, radius.shape)
    image = np.where(radius < 0.88, 100 + texture, 0.0)
    image = np.where((radius >= 0.88) & (radius < 1.0), 210.0, image)
    by, bx = cy + rng.uniform(-0.4, 0.4) * ry, cx + rng.uniform(-0.4, 0.4) * rx
    blob = ((yy - by) ** 2 + (xx - bx) ** 2) < (min(rx, ry) * rng.uniform(0.1, 0.25)) ** 2
    image = np.where(blob, 180 + rng.normal(0, 8, radius.shape), image)
    return np.clip(image, 0, 255).astype(np.uint8)


def _write_kaggle(root: Path) -> None:
    rng = np.random.default_rng(1234)
    for folder, count, prefix in (("Training", TRAIN_PER_CLASS, "Tr"), ("Testing", TEST_PER_CLASS, "Te")):
        for name in KAGGLE_CLASSES:
            class_dir = root / folder / name
            class_dir.mkdir(parents=True)
            for number in range(count):
                width, height = KAGGLE_SIZES[(number + len(name)) % len(KAGGLE_SIZES)]
                gray = brain_like(rng, width, height)
                path = class_dir / f"{prefix}-{name[:2]}_{number:04d}.jpg"
                # Like the real set: mostly grayscale stored as RGB, some stored as L.
                rgb = number % 2 == 0
                image = Image.fromarray(np.stack([gray] * 3, axis=-1) if rgb else gray)
                image.save(path, quality=92)
    # A 16-bit PNG using the full 0..65535 range.
    gray16 = brain_like(rng, 140, 160).astype(np.float64) / 255.0
    gray16 = np.round(gray16 / gray16.max() * 65535).astype(np.uint16)
    Image.fromarray(gray16).save(root / "Training" / "notumor" / "Tr-no_16bit.png")
    # The public set holds copies of training images in Testing/: one exact duplicate.
    original = root / "Training" / "glioma" / "Tr-gl_0000.jpg"
    shutil.copyfile(original, root / "Testing" / "glioma" / "Te-gl_dup.jpg")


@pytest.fixture(scope="session")
def kaggle_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny "Brain Tumor MRI Dataset" in the Kaggle layout; treat it as read-only (copy it to change it).

    root/Training/{glioma,meningioma,notumor,pituitary}/: 6 JPEGs each (RGB and L, mixed sizes), plus
    notumor/Tr-no_16bit.png (16-bit grayscale). root/Testing/<class>/: 2 JPEGs each, plus
    glioma/Te-gl_dup.jpg, a byte copy of Training/glioma/Tr-gl_0000.jpg. 34 files in all.
    """
    root = tmp_path_factory.mktemp("brain_tumor_mri")
    _write_kaggle(root)
    return root


@pytest.fixture(scope="session")
def ablation_dir(kaggle_root, tmp_path_factory) -> Path:
    """`+experiment=cbam_ablation seed=1,2` on tiny models, run once: 8 offline W&B runs under the returned
    sweep directory (4 attention variants x 2 seeds). Read-only for tests."""
    sweep = tmp_path_factory.mktemp("ablation") / "sweep"
    command = [sys.executable, "-m", "medivision.train", "+experiment=cbam_ablation", "seed=1,2",
               *tiny(kaggle_root, sweep, "model.loss.perceptual.weights=random", multirun=True)]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


@pytest.fixture(scope="session")
def tiny_checkpoint(kaggle_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint of a tiny CBAM generator (8 channels, 1 block), trained for 2 batches on kaggle_root."""
    from medivision.train import train
    from tests.training import compose_train

    out = tmp_path_factory.mktemp("tiny_run")
    train(compose_train(tiny(kaggle_root, out, "model.pretrain_epochs=1", "logger=none", "test=false")))
    return out / "checkpoints" / "last.ckpt"
