"""What an evaluation measured and writes: its result, the per-image CSV (one row per image, LR kind and method)
and the Markdown report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medivision.report.metrics import METRICS, UNCERTAINTY_METRICS
from medivision.report.tables import markdown_table

COLUMNS = ("image", "path", "slice_index", "class", "lr", "method", *METRICS, "fg_fraction", "hr_bg_mean")
HEADERS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "fg_psnr": "brain PSNR (dB)", "fg_ssim": "brain SSIM",
           "lr_psnr": "LR-consistency PSNR (dB)", "bg_mean": "background mean"}
CONSISTENT = " + consistency"
ENSEMBLED = " + ensemble"
UNCERTAINTY_COLUMNS = ("image", "class", "lr", *UNCERTAINTY_METRICS)


@dataclass
class Evaluation:
    """What medivision.evaluate measured and wrote: per-image rows, methods in table order, the files."""

    rows: list[dict]
    methods: list[str]
    report: str
    csv: Path
    markdown: Path
    figures: list[Path]  # cases.png; on data=real_scans, cases_<group>.png per group
    uncertainty: list[dict] = field(default_factory=list)  # per image, with ensemble=8 (UNCERTAINTY_COLUMNS)
    seconds: dict[str, float] = field(default_factory=dict)  # time each method took over the split
    gate_failures: list[str] | None = None  # data=real_scans: the groups failing the shipping gate ([]: it passes)


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


def markdown(rows: Sequence[dict], methods: Sequence[str], title: str, notes: Sequence[str],
             agreement: Sequence[dict] = (), seconds: dict[str, float] | None = None) -> str:
    """The report: overall table, per-class PSNR/SSIM, the consistency step's and the ensemble's change when they
    ran (with the time each method took), how the uncertainty map agrees with the error (`agreement`: per-image
    rows of UNCERTAINTY_COLUMNS), notes."""
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
        for suffix, what in ((CONSISTENT, "Data-consistency step"), (ENSEMBLED, "8-fold self-ensemble")):
            if method.endswith(suffix):
                base = method.removesuffix(suffix)
                lines += ["", f"## {what}: {method} minus {base}", ""]
                lines += markdown_table(["change", *(HEADERS[m] for m in METRICS)], [
                    [method, *(_signed(m, overall[method][m] - overall[base][m]) for m in METRICS)]])
                if seconds and method in seconds and base in seconds:
                    lines += ["", f"Time over the {count} images: {base} {seconds[base]:.2f} s, {method} "
                              f"{seconds[method]:.2f} s ({seconds[method] / max(seconds[base], 1e-9):.1f}x)."]
    if agreement:
        lines += ["", "## Uncertainty map vs error (model + ensemble, brain pixels)", ""]
        lines += _agreement(agreement)
    for note in notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def report_title(model: str, source: str, root: str | Path | None, degradation: str) -> str:
    """The report's heading: the model evaluated, on which data, with which degradation."""
    return (f"Evaluation of {model} on the test split of {source}{f' ({root})' if root else ''}, "
            f"degradation {degradation}")


def report_notes(foreground_level: float, foreground_dilation: int) -> list[str]:
    """The paragraphs that end the report: how the numbers are computed, and what an SR image is."""
    return [
        "PSNR and SSIM (data range 1, Gaussian 11x11 SSIM) are computed per image and averaged; the brain "
        f"columns use only the pixels of a mask derived from HR (HR > {foreground_level}, holes filled, "
        f"dilated by {foreground_dilation} px). LR-consistency PSNR compares degrade(output) with the LR "
        "input: how far an output strays from what was measured (higher is closer; it is not image quality). "
        "Background mean: the output's mean intensity outside the mask, where a real scan has its noise floor.",
        "SR images are model estimates, not measurements.",
    ]


def _agreement(agreement: Sequence[dict]) -> list[str]:
    """The uncertainty section: means over the images of the map, its correlation with |SR - HR|, and the error
    in the most vs the least uncertain tenth of each image's brain pixels."""
    mean = {name: float(np.nanmean([row[name] for row in agreement])) for name in UNCERTAINTY_METRICS}
    table = markdown_table(
        ["mean uncertainty", "correlation with \\|SR-HR\\|", "\\|SR-HR\\| in most uncertain 10%",
         "\\|SR-HR\\| in least uncertain 10%", "ratio"],
        [[f"{mean['uncertainty']:.4f}", f"{mean['corr']:.3f}", f"{mean['error_most']:.4f}",
          f"{mean['error_least']:.4f}", f"{mean['error_most'] / max(mean['error_least'], 1e-12):.1f}x"]])
    return [*table, "", "The uncertainty map is the per-pixel std of the 8 ensemble outputs, in [0, 1] units. "
            "Each number is averaged over the images (per-image values: uncertainty.csv). The map marks where the "
            "network is unsure, not every error: errors that all 8 outputs share are not in it."]


def _cell(metric: str, value: float) -> str:
    return f"{value:.4f}" if "psnr" not in metric else f"{value:.2f}"


def _signed(metric: str, value: float) -> str:
    return f"{value:+.4f}" if "psnr" not in metric else f"{value:+.2f}"
