"""Sample panels: what a person looks at to judge super-resolution."""

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import make_grid

PANEL_COLUMNS = ("LR (nearest)", "bicubic", "SR (model estimate, not a measurement)", "HR", "|SR-HR| x gain")


def heat(values: Tensor) -> Tensor:
    """Black-red-yellow-white colour map: [N, 1, H, W] in [0, 1] -> [N, 3, H, W] in [0, 1]."""
    return torch.cat([(3 * values).clamp(0, 1), (3 * values - 1).clamp(0, 1), (3 * values - 2).clamp(0, 1)], 1)


def make_panel(lr: Tensor, bicubic: Tensor, sr: Tensor, hr: Tensor, error_gain: float = 4.0) -> Tensor:
    """One row per sample with the columns of PANEL_COLUMNS.

    lr [N, 1, h, w]; bicubic, sr, hr [N, 1, H, W]; all in [0, 1]. The error map is |SR - HR| times
    `error_gain`, clipped to 1, in a heat colour map. Returns an RGB image [3, H', W'] in [0, 1].
    """
    size = hr.shape[-2:]
    gray = [F.interpolate(lr, size=size, mode="nearest"), bicubic, sr, hr]
    columns = [image.clamp(0, 1).expand(-1, 3, -1, -1) for image in gray]
    columns.append(heat(((sr - hr).abs() * error_gain).clamp(0, 1)))
    tiles = torch.stack(columns, dim=1).flatten(0, 1)  # row-major: sample by sample
    return make_grid(tiles.float().cpu(), nrow=len(columns), padding=2, pad_value=1.0)
