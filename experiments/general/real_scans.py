"""The README's look at real scans no one here made: nibabel's anatomical.nii (a real T1 volume, 2 mm) and
pydicom's MR_small.dcm (a real MR slice), enhanced by the bundled general model with the 8-fold ensemble and
uncertainty maps, drawn as input / SR / uncertainty.

    python experiments/general/real_scans.py [OUT_DIR]     (default: outputs/real_scans; figure: real_scans.png)
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pydicom
from hydra import compose, initialize_config_dir
from pydicom.data import get_testdata_file

from medivision.enhance import enhance

CONF = Path(__file__).resolve().parents[2] / "conf"


def run(source: Path, output: Path) -> str:
    """Enhance `source` into `output` with the bundled model, ensemble=8 and uncertainty=true; the summary."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("enhance", [f"input={source}", f"output={output}", "ensemble=8", "uncertainty=true",
                                  "overwrite=true"])
    return enhance(cfg).summary()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    volume = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"
    slice_file = Path(get_testdata_file("MR_small.dcm", download=False))
    print(run(volume, out / "anatomical_sr.nii"))
    print(run(slice_file, out / "MR_small_sr.dcm"))

    def axial(path: Path, index: float = 0.55) -> np.ndarray:
        data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
        return np.rot90(data[:, :, int(index * data.shape[2])])

    rows = [
        ("anatomical.nii (nibabel), axial slice, 2 mm", axial(volume), axial(out / "anatomical_sr.nii"),
         axial(out / "anatomical_sr_uncertainty.nii")),
        ("MR_small.dcm (pydicom)", pydicom.dcmread(slice_file).pixel_array.astype(np.float32),
         pydicom.dcmread(out / "MR_small_sr.dcm").pixel_array.astype(np.float32),
         pydicom.dcmread(out / "MR_small_sr_uncertainty.dcm").pixel_array.astype(np.float32)),
    ]
    figure, axes = plt.subplots(len(rows), 3, figsize=(10, 3.6 * len(rows)))
    for (title, lr, sr, spread), row in zip(rows, axes):
        low, high = np.percentile(lr, [0.5, 99.5])
        row[0].imshow(lr, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        row[0].set_title(f"{title}\ninput {lr.shape[1]}x{lr.shape[0]} (nearest)", fontsize=8)
        row[1].imshow(sr, cmap="gray", vmin=low, vmax=high)
        row[1].set_title(f"bundled model, 8-fold ensemble\n{sr.shape[1]}x{sr.shape[0]}: a model estimate", fontsize=8)
        shown = row[2].imshow(spread, cmap="magma", vmin=0, vmax=max(float(np.percentile(spread, 99.5)), 1e-6))
        row[2].set_title("uncertainty: std of the 8 ensemble outputs\n(stored units; not an error bar)", fontsize=8)
        figure.colorbar(shown, ax=row[2], shrink=0.8)
        for axis in row:
            axis.axis("off")
    figure.tight_layout()
    figure.savefig(out / "real_scans.png", dpi=110)
    print(f"figure: {out / 'real_scans.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("outputs/real_scans"))
