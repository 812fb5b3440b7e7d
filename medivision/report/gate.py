"""The shipping gate: a model ships only if, on the real-scan benchmark (data=real_scans), it beats bicubic in
PSNR and does not fall below bicubic's SSIM in every group, for every LR kind. Its table is what the model card
and `evaluate data=real_scans` show."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from medivision.report.tables import markdown_table

RULE = ("beats bicubic in PSNR and does not fall below bicubic's SSIM in every group, for LR by bicubic and by "
        "k-space truncation alike")


class GroupResult(NamedTuple):
    """The means over one group's images with one LR kind: the model's and bicubic's PSNR (dB) and SSIM, the model's
    LR-consistency PSNR (dB), and the background's mean intensity in [0, 1] units in the model's output and the
    truth (NaN where an image has no background)."""

    group: str
    lr: str
    images: int
    psnr: float
    bicubic_psnr: float
    ssim: float
    bicubic_ssim: float
    lr_psnr: float
    background: float
    true_background: float

    @property
    def gain(self) -> float:
        return self.psnr - self.bicubic_psnr

    @property
    def ssim_change(self) -> float:
        return self.ssim - self.bicubic_ssim

    @property
    def passes(self) -> bool:
        return self.gain > 0 and self.ssim_change >= 0


def group_results(rows: Sequence[dict], method: str = "model") -> list[GroupResult]:
    """One GroupResult per (class, LR kind) of evaluate's per-image rows (keys "class", "lr", "method", the
    metrics, "hr_bg_mean"), in the order they first occur."""
    keys = list(dict.fromkeys((row["class"], row["lr"]) for row in rows))
    results = []
    for group, lr in keys:
        mine = [row for row in rows if row["class"] == group and row["lr"] == lr]
        model = [row for row in mine if row["method"] == method]
        bicubic = [row for row in mine if row["method"] == "bicubic"]

        def mean(subset: list[dict], key: str) -> float:
            return float(np.nanmean([row[key] for row in subset])) if subset else float("nan")

        results.append(GroupResult(group, lr, len(model), mean(model, "psnr"), mean(bicubic, "psnr"),
                                   mean(model, "ssim"), mean(bicubic, "ssim"), mean(model, "lr_psnr"),
                                   mean(model, "bg_mean"), mean(model, "hr_bg_mean")))
    return results


def failures(results: Sequence[GroupResult], expected: Sequence[tuple[str, str]] = ()) -> list[str]:
    """One phrase per failing group and LR kind, e.g. "b0 with kspace LR: PSNR -0.21 dB, SSIM -0.0310 against
    bicubic"; [] when the gate passes. A (group, LR kind) of `expected` with no slices fails too: a model is not
    passed on a group it was never measured on."""
    measured = {(result.group, result.lr) for result in results if result.images}
    missing = [f"{group} with {lr} LR: no slices" for group, lr in expected if (group, lr) not in measured]
    return missing + [f"{result.group} with {result.lr} LR: PSNR {result.gain:+.2f} dB, SSIM "
                      f"{result.ssim_change:+.4f} against bicubic" for result in results if not result.passes]


def overall_gain(results: Sequence[GroupResult]) -> float:
    """The PSNR gain over bicubic averaged over every image of every group and LR kind (dB)."""
    weights = np.array([result.images for result in results], dtype=float)
    return float(np.average([result.gain for result in results], weights=weights)) if weights.sum() else float("nan")


def gate_markdown(results: Sequence[GroupResult], expected: Sequence[tuple[str, str]] = ()) -> list[str]:
    """The gate's verdict and its table (one row per group and LR kind), as Markdown lines; `expected` as in
    failures."""
    failed = failures(results, expected)
    verdict = (f"**Shipping gate: passed.** The model {RULE}." if not failed else
               f"**Shipping gate: failed** ({'; '.join(failed)}). A model ships only if it {RULE}.")
    table = markdown_table(
        ["group", "LR", "slices", "model PSNR (dB)", "bicubic PSNR (dB)", "gain (dB)", "model SSIM", "bicubic SSIM",
         "SSIM change", "LR-consistency PSNR (dB)", "background mean, model / truth", "gate"],
        [[r.group, r.lr, r.images, f"{r.psnr:.2f}", f"{r.bicubic_psnr:.2f}", f"{r.gain:+.2f}", f"{r.ssim:.4f}",
          f"{r.bicubic_ssim:.4f}", f"{r.ssim_change:+.4f}", f"{r.lr_psnr:.2f}",
          f"{r.background:.4f} / {r.true_background:.4f}", "pass" if r.passes else "FAIL"] for r in results])
    return [verdict, "", *table, "", f"Overall PSNR gain over bicubic: {overall_gain(results):+.2f} dB "
            f"(every slice of every group and LR kind)."]
