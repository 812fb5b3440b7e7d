"""Attention gates for residual blocks: channel, spatial and CBAM (channel then spatial).

CBAM follows Woo et al., "CBAM: Convolutional Block Attention Module" (ECCV 2018).
Every gate maps features [B, C, H, W] to features of the same shape, rescaled by a gate in (0, 1).
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn


class ChannelGate(nn.Module):
    """Rescales each channel by sigmoid(MLP(avgpool(x)) + MLP(maxpool(x))), the MLP shared.

    x: [B, C, H, W] -> [B, C, H, W]; the gate is [B, C, 1, 1] in (0, 1).
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        peak = self.mlp(_max(x.flatten(2), dim=2).unsqueeze(-1))
        return x * torch.sigmoid(avg + peak)


class SpatialGate(nn.Module):
    """Rescales each position by sigmoid(conv7x7([mean_c(x), max_c(x)])).

    x: [B, C, H, W] -> [B, C, H, W]; the gate is [B, 1, H, W] in (0, 1).
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), _max(x, dim=1)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Sequential):
    """Channel gate followed by spatial gate. x: [B, C, H, W] -> [B, C, H, W]."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__(ChannelGate(channels, reduction), SpatialGate(kernel_size))


def _max(x: Tensor, dim: int) -> Tensor:
    """Maximum over `dim`, kept as a size-1 dimension.

    max() rather than amax(): its backward sends the gradient through the index of the maximum, whereas
    amax's backward compares x with the maximum again, and torch.compile's bf16 kernels for that
    comparison gave NaN gradients when two such gates follow each other (torch 2.15, seen on the CPU).
    """
    return x.max(dim=dim, keepdim=True).values


# (channels, reduction) -> a gate mapping [B, channels, H, W] to the same shape
AttentionFactory = Callable[[int, int], nn.Module]

# The attention types `model.generator.attention` names; a new one is one entry here (and its name in the config).
ATTENTION: dict[str, AttentionFactory] = {
    "none": lambda channels, reduction: nn.Identity(),
    "channel": ChannelGate,
    "spatial": lambda channels, reduction: SpatialGate(),
    "cbam": CBAM,
}


def attention_factory(kind: str) -> AttentionFactory:
    """The constructor of the gate named `kind` (`model.generator.attention`): none | channel | spatial | cbam.

    The one check of an attention name: raises ValueError naming the kinds there are.
    """
    if kind not in ATTENTION:
        raise ValueError(f"attention={kind!r} is not one of {', '.join(ATTENTION)}")
    return ATTENTION[kind]
