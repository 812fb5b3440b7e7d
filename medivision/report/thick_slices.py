"""The thick-slice benchmark's numbers, tables and figure: isotropic volumes against their truth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from medivision.report.metrics import psnr, ssim  # noqa: E402
from medivision.report.tables import markdown_table  # noqa: E402

THICK_METHODS = ("linear", "cubic B-spline", "cubic B-spline, consistent", "prior", "prior + adaptation")
# What the prior must beat, in PSNR and SSIM, on every case of every volume that is evidence, to ship: cubic
# B-spline, the interpolation a viewer would otherwise give (the report also shows it made consistent with the
# acquired slabs, as the prior's output is, which is what the network itself adds to).
GATE_BASELINE = "cubic B-spline"


def volume_scores(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """PSNR (dB) of the whole volume, and SSIM averaged over its through-plane images, from float32 [n, a, b] in
    [0, 1] with the slice axis first (the images [a][n, b] show the slice axis as rows)."""
    sr = torch.from_numpy(np.ascontiguousarray(estimate.transpose(1, 0, 2)[:, None]))
    hr = torch.from_numpy(np.ascontiguousarray(truth.transpose(1, 0, 2)[:, None]))
    whole = psnr(torch.from_numpy(estimate[None]), torch.from_numpy(truth[None]))
    return {"psnr": float(whole[0]), "ssim": float(ssim(sr, hr).mean())}


def report_lines(rows: Sequence[dict], notes: Sequence[str]) -> list[str]:
    """report.md: one table per volume (PSNR and SSIM of each method per case, the gain of the prior over cubic
    B-spline and of adaptation over the prior), then the notes."""
    lines = ["# Thick-slice benchmark", ""]
    for volume in dict.fromkeys(row["volume"] for row in rows):
        cases = [row for row in rows if row["volume"] == volume]
        header = ["case", *[f"{method} PSNR / SSIM" for method in THICK_METHODS], "prior - cubic",
                  "adaptation - prior", "LR-consistency"]
        body = [[row["case"], *[f"{row[m + ' psnr']:.2f} / {row[m + ' ssim']:.4f}" if m + " psnr" in row else "-"
                                for m in THICK_METHODS],
                 f"{row['prior psnr'] - row['cubic B-spline psnr']:+.2f} dB",
                 f"{row['prior + adaptation psnr'] - row['prior psnr']:+.2f} dB" if "prior + adaptation psnr" in row
                 else "-", f"{row['lr_psnr']:.1f} dB"] for row in cases]
        lines += [f"## {volume}", "", *markdown_table(header, body), ""]
    return lines + [f"- {note}" for note in notes]


def gate_failures(rows: Sequence[dict], volumes: Sequence[str]) -> list[str]:
    """The cases of `volumes` where the prior does not beat GATE_BASELINE in both PSNR and SSIM ([]: it ships)."""
    return [f"{row['volume']} {row['case']}: prior {row['prior psnr']:.2f} dB / {row['prior ssim']:.4f} against "
            f"{row[GATE_BASELINE + ' psnr']:.2f} dB / {row[GATE_BASELINE + ' ssim']:.4f}" for row in rows
            if row["volume"] in volumes and (row["prior psnr"] <= row[GATE_BASELINE + " psnr"]
                                             or row["prior ssim"] <= row[GATE_BASELINE + " ssim"])]


def reformats(path: Path, truth: np.ndarray, estimates: dict[str, np.ndarray], title: str) -> None:
    """Orthogonal reformats through the middle of each volume [n, a, b] (slice axis first): the acquired plane and
    the two through-plane planes, one row per method with the truth on top, and each row's |error| x 4 beside."""
    rows = {"truth": truth, **estimates}
    figure, axes = plt.subplots(len(rows), 6, figsize=(15, 2.6 * len(rows)), squeeze=False)
    for row, (name, volume) in enumerate(rows.items()):
        for column, cut in enumerate(_cuts(volume)):
            axes[row, column].imshow(cut, cmap="gray", vmin=0, vmax=1, aspect="equal")
            error = np.abs(cut - _cuts(truth)[column]) * 4
            axes[row, column + 3].imshow(error, cmap="inferno", vmin=0, vmax=1, aspect="equal")
        axes[row, 0].set_ylabel(name)
    for column, label in enumerate(("acquired plane", "through-plane 1", "through-plane 2")):
        axes[0, column].set_title(label)
        axes[0, column + 3].set_title(f"|error| x 4, {label}")
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(f"{title} (estimates are model outputs, not measurements)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _cuts(volume: np.ndarray) -> list[np.ndarray]:
    """The three middle planes of [n, a, b]: [a, b] (acquired plane), [n, b] and [n, a] (slice axis as rows)."""
    n, a, b = volume.shape
    return [volume[n // 2], volume[:, a // 2, :], volume[:, :, b // 2]]
