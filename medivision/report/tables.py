"""The one table writer: Markdown and plain-text tables and CSV files, used by every report and printout."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown pipe table as lines: the first column left-aligned (labels), the others right-aligned (numbers).
    Cells are written with str(); format numbers before."""
    lines = ["| " + " | ".join(str(cell) for cell in header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "") -> list[str]:
    """A fixed-width plain-text table as lines, each column as wide as its widest cell: the first column
    left-aligned, the others right-aligned. Cells are written with str(); format numbers before."""
    cells = [[str(cell) for cell in row] for row in (header, *rows)]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    return [indent + "  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                               for column, (cell, width) in enumerate(zip(row, widths))).rstrip()
            for row in cells]


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    """`rows` as a CSV file with a header of `columns` (keys missing from a row are left empty; a key that is not
    a column is an error)."""
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def metrics_table(results: dict[str, dict[str, float]]) -> str:
    """Rows model and bicubic, a PSNR (dB) and an SSIM column per split.

    results: {"val": {"val/psnr": ..., "val/ssim": ..., "val/bicubic_psnr": ..., "val/bicubic_ssim": ...},
    "test": {...}}; splits without numbers are left out.
    """
    splits = [split for split, values in results.items() if values]
    header = ["", *(name for split in splits for name in (f"{split} PSNR (dB)", f"{split} SSIM"))]
    rows = [[label, *(cell for split in splits for cell in (f"{results[split][f'{split}/{prefix}psnr']:.2f}",
                                                           f"{results[split][f'{split}/{prefix}ssim']:.4f}"))]
            for label, prefix in (("model (EMA)", ""), ("bicubic", "bicubic_"))]
    return "\n".join(text_table(header, rows))
