"""Sample panels, what a person looks at to judge super-resolution: one renderer for training samples, W&B
and evaluate's case figure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from medivision.data.dataset import unit_range

# One row of a panel: (row caption, lr [1, h, w], bicubic [1, H, W], sr [1, H, W], hr [1, H, W]), all in [0, 1].
PanelRow = tuple[str, Tensor, Tensor, Tensor, Tensor]


def column_names(error_gain: float) -> tuple[str, ...]:
    return ("LR (input)", "bicubic", "SR (model estimate,\nnot a measurement)", "HR", f"|SR-HR| x{error_gain:g}")


def render_panel(rows: Sequence[PanelRow], error_gain: float = 4.0) -> np.ndarray:
    """The panel as an RGB image, uint8 [height, width, 3]: one row per entry of `rows`, the columns of
    column_names drawn above the first row and each row's caption at its left.

    LR is shown with nearest-neighbour pixels; the error map shows |SR - HR| from 0 (black) to 1/error_gain
    or more (white) in the inferno colour map.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = column_names(error_gain)
    figure = Figure(figsize=(2.4 * len(names), 2.6 * len(rows)))
    canvas = FigureCanvasAgg(figure)  # drawn off-screen, whatever backend the process uses
    axes = figure.subplots(len(rows), len(names), squeeze=False)
    for row, (caption, lr, bicubic, sr, hr) in enumerate(rows):
        for column, image in enumerate((lr, bicubic, sr, hr)):
            axes[row, column].imshow(_plane(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[row, 4].imshow(_plane((sr - hr).abs()), cmap="inferno", vmin=0, vmax=1 / error_gain)
        axes[row, 0].set_ylabel(caption, fontsize=8)
        for column, axis in enumerate(axes[row]):
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(names[column], fontsize=8)
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_panel(path: Path, rows: Sequence[PanelRow], error_gain: float = 4.0) -> np.ndarray:
    """render_panel, written to `path` as PNG; returns the pixels for loggers."""
    pixels = render_panel(rows, error_gain)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def brain_samples(hr: Tensor, count: int, level: float = 0.05) -> list[int]:
    """Positions of `count` images of `hr` (uint8 [N, 1, H, W] or float in [0, 1]) worth looking at: spread
    evenly over the images whose foreground (pixels above `level`) is at least the median, so that a panel
    shows brain rather than the empty edge slices a split may begin with."""
    foreground = (unit_range(hr) > level).flatten(1).float().mean(1)
    candidates = torch.nonzero(foreground >= foreground.median()).flatten()
    count = min(count, len(candidates))
    picks = torch.linspace(0, len(candidates) - 1, count).round().long() if count else torch.zeros(0, dtype=torch.long)
    return candidates[picks].tolist()


def _plane(image: Tensor) -> np.ndarray:
    return image.detach().float().cpu()[0].numpy()
