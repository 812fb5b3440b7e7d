"""The files an evaluation writes: per-image CSV, Markdown tables, and the best/median/worst figure."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medivision.report.metrics import METRICS

COLUMNS = ("image", "path", "slice_index", "class", "method", *METRICS, "fg_fraction")
HEADERS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "fg_psnr": "brain PSNR (dB)", "fg_ssim": "brain SSIM",
           "lr_psnr": "LR-consistency PSNR (dB)"}
CONSISTENT = " + consistency"


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    """One row per test image and method, the columns of COLUMNS."""
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def means(rows: Sequence[dict], methods: Sequence[str], key: str | None = None) -> dict:
    """{method: {metric: mean}}, or with `key` (e.g. "class") {method: {key value: {metric: mean}}}."""
    result = {}
    for method in methods:
        mine = [row for row in rows if row["method"] == method]
        if key is None:
            result[method] = {metric: float(np.mean([row[metric] for row in mine])) for metric in METRICS}
        else:
            groups = sorted({row[key] for row in mine}, key=str)
            result[method] = {group: means([r for r in mine if r[key] == group], [method])[method] for group in groups}
    return result


def markdown(rows: Sequence[dict], methods: Sequence[str], title: str, notes: Sequence[str]) -> str:
    """The report: overall table, per-class PSNR/SSIM, the consistency step's change when it ran, notes."""
    count = len({row["image"] for row in rows})
    overall = means(rows, methods)
    lines = [f"# {title}", "", f"## Overall ({count} test images)", "",
             "| method | " + " | ".join(HEADERS[m] for m in METRICS) + " |",
             "| --- |" + " ---: |" * len(METRICS)]
    lines += [f"| {method} | " + " | ".join(_cell(m, overall[method][m]) for m in METRICS) + " |" for method in methods]
    by_class = means(rows, methods, "class")
    classes = sorted({row["class"] for row in rows})
    lines += ["", "## Per class: PSNR (dB) / SSIM", "", "| method | " + " | ".join(
        f"{name} ({sum(1 for r in rows if r['class'] == name and r['method'] == methods[0])})" for name in classes
    ) + " |", "| --- |" + " ---: |" * len(classes)]
    for method in methods:
        cells = [f"{by_class[method][name]['psnr']:.2f} / {by_class[method][name]['ssim']:.4f}" for name in classes]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    for method in methods:
        if method.endswith(CONSISTENT):
            base = method.removesuffix(CONSISTENT)
            lines += ["", f"## Data-consistency step: {method} minus {base}", "",
                      "| " + " | ".join(HEADERS[m] for m in METRICS) + " |", "|" + " ---: |" * len(METRICS),
                      "| " + " | ".join(_signed(m, overall[method][m] - overall[base][m]) for m in METRICS) + " |"]
    for note in notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _cell(metric: str, value: float) -> str:
    return f"{value:.4f}" if "ssim" in metric else f"{value:.2f}"


def _signed(metric: str, value: float) -> str:
    return f"{value:+.4f}" if "ssim" in metric else f"{value:+.2f}"
