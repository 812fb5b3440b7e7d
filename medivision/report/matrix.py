"""Model-by-condition matrices (trained on x evaluated on): mean test PSNR/SSIM of each model and of bicubic
upsampling on the same LR images, as Markdown tables and annotated heat maps of the gain over bicubic."""

from __future__ import annotations

from pathlib import Path

import torch

from medivision.data.datamodule import SRDataModule
from medivision.inference.ensemble import Ensemble
from medivision.inference.models import SRModel
from medivision.report import metrics
from medivision.report.scoring import Method, through_test_split
from medivision.report.tables import markdown_table

METRICS = ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")


@torch.inference_mode()
def evaluate_on(models: dict[str, SRModel], datamodule: SRDataModule, ensemble: Ensemble = 1) -> dict[str, dict]:
    """Mean per-image PSNR/SSIM (data range 1, as medivision.evaluate) of each model (in one pass, or as its 8-fold
    self-ensemble with ensemble=8) and bicubic on the test split: {name: {METRICS..., "images": count}}."""
    sums = {name: dict.fromkeys(METRICS, 0.0) for name in models}
    count = 0
    methods = {name: Method(model, ensemble) for name, model in models.items()}
    for part in through_test_split(datamodule, methods):
        hr = part.batch["hr"]
        bicubic = _scores(part.bicubic, hr)
        for name in models:
            scores = _scores(part.outputs[name], hr)
            for metric, values in (*scores.items(), *((f"bicubic_{k}", v) for k, v in bicubic.items())):
                sums[name][metric] += float(values.sum())
        count += len(hr)
    return {name: {**{metric: total / count for metric, total in values.items()}, "images": count}
            for name, values in sums.items()}


def _scores(sr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"psnr": metrics.psnr(sr, hr), "ssim": metrics.ssim(sr, hr)}


def matrix_tables(cell: dict[tuple[str, str], dict], labels: list[str], columns: list[str], corner: str) -> list[str]:
    """Markdown lines: the values (model PSNR / SSIM, bicubic in brackets), then the gain over bicubic.
    cell[(label, column)] holds METRICS; `corner` heads the label column (e.g. "trained on \\ evaluated on")."""
    header = [corner, *columns]
    lines = ["Each cell: model PSNR (dB) / SSIM, and in brackets bicubic upsampling of the same LR images.", ""]
    lines += markdown_table(header, [
        [label, *(f"{c['psnr']:.2f} / {c['ssim']:.4f} (bicubic {c['bicubic_psnr']:.2f} / {c['bicubic_ssim']:.4f})"
                  for c in (cell[(label, column)] for column in columns))] for label in labels])
    lines += ["", "Gain over bicubic, PSNR (dB) / SSIM:", ""]
    lines += markdown_table(header, [
        [label, *(f"{c['psnr'] - c['bicubic_psnr']:+.2f} / {c['ssim'] - c['bicubic_ssim']:+.4f}"
                  for c in (cell[(label, column)] for column in columns))] for label in labels])
    return lines


def heat_map(path: Path, cell: dict[tuple[str, str], dict], labels: list[str], columns: list[str], rows_are: str,
             columns_are: str, title: str) -> None:
    """Two heat maps, PSNR and SSIM gain over bicubic, each cell annotated with the model's and bicubic's values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(4.2 + 2.4 * len(columns), 1.6 + 0.75 * len(labels)), squeeze=False)
    for axis, (metric, unit, digits) in zip(axes[0], (("psnr", "dB", 2), ("ssim", "", 4))):
        gain = torch.tensor([[cell[(label, column)][metric] - cell[(label, column)][f"bicubic_{metric}"]
                              for column in columns] for label in labels])
        limit = float(gain.abs().max()) or 1.0
        image = axis.imshow(gain.numpy(), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        for i, label in enumerate(labels):
            for j, column in enumerate(columns):
                values = cell[(label, column)]
                colour = "white" if abs(float(gain[i, j])) > 0.6 * limit else "black"  # readable on dark cells
                axis.text(j, i, f"{values[metric]:.{digits}f}\n(bicubic {values[f'bicubic_{metric}']:.{digits}f})",
                          ha="center", va="center", fontsize=7, color=colour)
        axis.set_xticks(range(len(columns)), columns, fontsize=8)
        axis.set_yticks(range(len(labels)), labels, fontsize=8)
        axis.set_xlabel(columns_are)
        axis.set_ylabel(rows_are)
        axis.set_title(f"{metric.upper()}: colour = gain over bicubic{f' ({unit})' if unit else ''}", fontsize=9)
        figure.colorbar(image, ax=axis, shrink=0.8)
    figure.suptitle(f"{title} (SR values are model estimates)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
