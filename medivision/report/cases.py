"""evaluate's case figures, test images picked by the model's PSNR and drawn as panels (medivision.report.panels):
its best, median and worst image (cases.png), or on the real-scan benchmark each group's median image with every
LR kind (cases_<group>.png)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from medivision.data.datamodule import SRDataModule
from medivision.data.degradations import upsample_bicubic
from medivision.inference.models import SRModel
from medivision.report.panels import PanelRow, save_panel


@torch.inference_mode()
def case_figure(path: Path, rows: Sequence[dict], model: SRModel, datamodule: SRDataModule,
                error_gain: float) -> None:
    """The model's best, median and worst test images by PSNR (`rows`: evaluate's per-image rows), recomputed
    from the cached HR, one panel row each."""
    mine = sorted((row for row in rows if row["method"] == "model"), key=lambda row: row["psnr"])
    picks = (("best", mine[-1]), ("median", mine[len(mine) // 2]), ("worst", mine[0]))
    save_panel(path, [_case(f"{title}: {row['class']} #{row['image']}", row, model, datamodule)
                      for title, row in picks], error_gain)


@torch.inference_mode()
def group_figures(paths: Sequence[Path], rows: Sequence[dict], model: SRModel,
                  datamodules: dict[str, SRDataModule], error_gain: float) -> None:
    """Per group of the real-scan benchmark (paths: cases_<group>.png), its median image by model PSNR with each
    LR kind (datamodules: one per kind), one panel row each."""
    for path in paths:
        group = path.stem.removeprefix("cases_")
        cases = []
        for kind, datamodule in datamodules.items():
            mine = sorted((row for row in rows if row["method"] == "model" and row["class"] == group
                           and row["lr"] == kind), key=lambda row: row["psnr"])
            if mine:
                row = mine[len(mine) // 2]
                cases.append(_case(f"{group}, {kind} LR: median #{row['image']}", row, model, datamodule))
        save_panel(path, cases, error_gain)


def _case(title: str, row: dict, model: SRModel, datamodule: SRDataModule) -> PanelRow:
    """One panel row for the test image of `row`: LR, bicubic, SR, HR, captioned with its numbers."""
    index = row["image"]
    hr, lr = datamodule.evaluation_pair(datamodule.test_set.rows[[index]], datamodule.test_set.hr[[index]])
    caption = f"{title}\nPSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.3f}"
    bicubic = upsample_bicubic(lr, datamodule.lowres.scale)[0]
    return caption, lr[0], bicubic, torch.from_numpy(model(lr.numpy()))[0], hr[0]
