"""The files an evaluation writes: per-image CSV, Markdown tables, and the best/median/worst figure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medivision.report.metrics import METRICS
from medivision.report.tables import markdown_table

COLUMNS = ("image", "path", "slice_index", "class", "method", *METRICS, "fg_fraction")
HEADERS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "fg_psnr": "brain PSNR (dB)", "fg_ssim": "brain SSIM",
           "lr_psnr": "LR-consistency PSNR (dB)"}
CONSISTENT = " + consistency"


def means(rows: Sequence[dict], methods: Sequence[str], key: str | None = None) -> dict:
    """{method: {metric: mean}}, or with `key` (e.g. "class") {method: {key value: {metric: mean}}}. The brain
    metrics of images without brain (NaN) are left out of their means."""
    result = {}
    for method in methods:
        mine = [row for row in rows if row["method"] == method]
        if key is None:
            result[method] = {metric: float(np.nanmean([row[metric] for row in mine])) for metric in METRICS}
        else:
            groups = sorted({row[key] for row in mine}, key=str)
            result[method] = {group: means([r for r in mine if r[key] == group], [method])[method] for group in groups}
    return result


def markdown(rows: Sequence[dict], methods: Sequence[str], title: str, notes: Sequence[str]) -> str:
    """The report: overall table, per-class PSNR/SSIM, the consistency step's change when it ran, notes."""
    count = len({row["image"] for row in rows})
    overall = means(rows, methods)
    lines = [f"# {title}", "", f"## Overall ({count} test images)", ""]
    lines += markdown_table(["method", *(HEADERS[m] for m in METRICS)],
                            [[method, *(_cell(m, overall[method][m]) for m in METRICS)] for method in methods])
    by_class = means(rows, methods, "class")
    classes = sorted({row["class"] for row in rows})
    lines += ["", "## Per class: PSNR (dB) / SSIM", ""]
    lines += markdown_table(
        ["method", *(f"{name} ({sum(1 for r in rows if r['class'] == name and r['method'] == methods[0])})"
                     for name in classes)],
        [[method, *(f"{by_class[method][name]['psnr']:.2f} / {by_class[method][name]['ssim']:.4f}" for name in classes)]
         for method in methods])
    for method in methods:
        if method.endswith(CONSISTENT):
            base = method.removesuffix(CONSISTENT)
            lines += ["", f"## Data-consistency step: {method} minus {base}", ""]
            lines += markdown_table(["change", *(HEADERS[m] for m in METRICS)],
                                    [[method, *(_signed(m, overall[method][m] - overall[base][m]) for m in METRICS)]])
    for note in notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _cell(metric: str, value: float) -> str:
    return f"{value:.4f}" if "ssim" in metric else f"{value:.2f}"


def _signed(metric: str, value: float) -> str:
    return f"{value:+.4f}" if "ssim" in metric else f"{value:+.2f}"
