"""Times enhance through_plane=true on a 256x256x40 thick-slice volume (experiments/thick_slices/README.md).

Run from the repository root with the project's .venv, on a quiet machine:

    .venv/bin/python experiments/thick_slices/measure.py /tmp/thick-measure [CKPT]

The volume: the MNI152 2009 T1 template (1 mm) zero-padded to 256x256 in-plane, cut into 40 axial 4 mm slabs
(rect profile, no gap) from its slices 14 to 173, written as NIfTI with 1 x 1 x 4 mm voxels. enhance makes it
isotropic with the bundled prior (or CKPT) alone (adapt=false) and adapted for its default time budget
(adapt=true), each timed from the command's start to its end; each output is scored against the 1 mm truth.
Results go to OUT/results.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from medivision.data.isotropic_volumes import ISOTROPIC_VOLUMES, read_volume
from medivision.data.slice_profile import SliceGeometry, acquire
from medivision.inference.consistency import psnr

REPO = Path(__file__).resolve().parents[2]
OUT = Path(sys.argv[1]).resolve()
CKPT = sys.argv[2:3]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    truth = thick_volume(OUT / "thick_256x256x40.nii.gz")
    results = {"volume": "MNI152 T1 padded to 256x256, 40 slabs of 4 mm (1 x 1 x 4 mm voxels)", "runs": {}}
    for adapt in ("false", "true"):
        output = OUT / f"iso_adapt_{adapt}.nii.gz"
        command = [sys.executable, "-m", "medivision.enhance", f"input={OUT / 'thick_256x256x40.nii.gz'}",
                   f"output={output}", "through_plane=true", f"adapt={adapt}", "overwrite=true",
                   *[f"ckpt={path}" for path in CKPT]]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        seconds = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(done.stderr[-2000:])
        estimate = np.asanyarray(nib.load(str(output)).dataobj).astype(np.float32)
        results["runs"][f"adapt={adapt}"] = {
            "seconds": round(seconds, 1), "psnr_vs_truth": round(float(psnr(estimate[None], truth[None])[0]), 2),
            "summary": done.stdout.strip().splitlines()}
        print(adapt, results["runs"][f"adapt={adapt}"])
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def thick_volume(path: Path) -> np.ndarray:
    """Writes the thick volume to `path` (float32 values in [0, 1]); returns its 1 mm truth [256, 256, 160]."""
    template = next(volume for volume in ISOTROPIC_VOLUMES if volume.name == "mni152")
    unit, _ = read_volume(template)
    padded = np.zeros((256, 256, unit.shape[2]), np.float32)
    x, y = (256 - unit.shape[0]) // 2, (256 - unit.shape[1]) // 2
    padded[x:x + unit.shape[0], y:y + unit.shape[1]] = unit
    truth = padded[:, :, 14:174]
    geometry = SliceGeometry(4.0, 4.0)
    thick = np.moveaxis(acquire(np.moveaxis(truth, 2, 0), geometry, 40), 0, 2)
    image = nib.Nifti1Image(thick, np.diag([1.0, 1.0, 4.0, 1.0]))
    image.header.set_zooms((1.0, 1.0, 4.0))
    nib.save(image, str(path))
    return truth


if __name__ == "__main__":
    main()
