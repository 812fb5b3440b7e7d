"""Bad data and bad config values: a counted skip, or a one-line error naming the file or key, before data is read.

The cases test_data.py already covers (corrupt JPEG, empty file, non-image, 16-bit PNG, wrong data.root, a
missing or empty class folder) are listed in docs/reliability.md; these are the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from medivision.data.datamodule import SRDataModule
from medivision.data.decode import read_gray, to_hr
from medivision.data.sources import DataError
from medivision.train import train
from tests.conftest import brain_like
from tests.training import REPO, compose_train, tiny

# Report of an SRDataModule set up in a fresh process: what was skipped and why, and the split sizes.
SETUP_REPORT = """
import json, sys, warnings
from medivision.data.datamodule import SRDataModule
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    dm = SRDataModule(source="kaggle", root=sys.argv[1], cache_dir=sys.argv[2])
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
    dm = SRDataModule(source="folder", root=str(folder), cache_dir=str(tmp_path / "cache"), val_fraction=0.2,
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
        SRDataModule(source="folder", root=str(tmp_path / "notes"), cache_dir=str(tmp_path)).setup()


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.loss.perceptual.weight=-0.01"], "model.loss.perceptual.weight=-0.01 must be >= 0"),
    (["model.generator.attention=se"], "model.generator.attention='se' is not one of none, channel, spatial, cbam"),
    (["data.scale=3"], "data.hr_size=128 is not divisible by data.scale=3"),
    (["data.scale=3", "data.hr_size=96"], r"model.generator.scale=3 must be a power of two \(2, 4, 8\)"),
    (["data.degradation=jpeg"], "data.degradation='jpeg' is not one of bicubic, kspace, kspace_noise"),
    (["data.degradation_options.noise=2"], r"data.degradation_options.noise=2 must be a noise std in \[0, 1\)"),
    (["model.max_bad_steps=0"], "model.max_bad_steps=0 must be at least 1"),
    (["model.ema_decay=1.5"], r"model.ema_decay=1.5 must be in \[0, 1\)"),
])
def test_bad_config_values_stop_the_run_before_any_data_is_read(overrides, message, tmp_path):
    # data.root does not exist: an error about it, or a cache folder, would mean data was read first
    cfg = compose_train(tiny(tmp_path / "no-such-data", tmp_path / "run", *overrides, "logger=csv"))
    with pytest.raises(Exception, match=message):
        train(cfg)
    assert not (tmp_path / "run" / "cache").exists() and not (tmp_path / "run" / "csv").exists()
