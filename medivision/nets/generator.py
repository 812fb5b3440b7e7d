"""SRResNet generator (Ledig et al., 2017) with an attention gate in every residual block."""

import math

import torch.nn.functional as F
from torch import Tensor, nn

from medivision.nets.attention import make_attention

PADDINGS = ("replicate", "zeros")
# LR pixels of repeated margin around every input that ClampedGenerator serves (cut off the output again).
BORDER = 4


class ResidualBlock(nn.Module):
    """conv-(BN)-PReLU-conv-(BN), then the attention gate, plus the skip. [B, C, H, W] -> same."""

    def __init__(self, channels: int, attention: str, batch_norm: bool, reduction: int, padding: str = "zeros"):
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(channels)) if batch_norm else nn.Identity
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm, padding_mode=padding),
            norm(),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm, padding_mode=padding),
            norm(),
        )
        self.attention = make_attention(attention, channels, reduction, padding)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.attention(self.body(x))


class SRResNet(nn.Module):
    """Maps an LR image [B, in_channels, h, w] in [0, 1] to SR [B, in_channels, scale*h, scale*w].

    The output is not clamped (training sees the raw values); clamp to [0, 1] for display and metrics.
    Fully convolutional, so any h, w works. With `bicubic_skip`, the network predicts the residual over
    bicubic upsampling, which trains much faster and starts from the bicubic baseline.

    Args:
        channels: feature width (64 in the paper).
        blocks: residual blocks (16 in the paper).
        scale: 2, 4 or 8; one PixelShuffle x2 stage per factor of two.
        attention: none | channel | spatial | cbam, in every residual block.
        batch_norm: BatchNorm in the residual blocks, as in SRResNet.
        reduction: channel-gate MLP reduction.
        padding: how every convolution pads the feature maps' border, one of PADDINGS. "replicate" repeats the
            edge pixels, so a border row is computed from its neighbours; "zeros" pads black, which pulls the
            border rows towards black (SRResNet's original; model files from before this option were trained
            with it, so it stays the default here; the configs choose replicate).
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 64,
        blocks: int = 16,
        scale: int = 4,
        attention: str = "cbam",
        batch_norm: bool = True,
        reduction: int = 16,
        bicubic_skip: bool = True,
        padding: str = "zeros",
    ):
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding={padding!r} is not one of {', '.join(PADDINGS)}")
        stages = int(math.log2(scale)) if scale > 0 else 0
        if scale < 2 or 2**stages != scale:
            raise ValueError(f"scale={scale} must be a power of two (2, 4, 8)")
        if blocks < 1 or channels < 1:
            raise ValueError(f"blocks={blocks} and channels={channels} must be positive")
        self.scale = scale
        self.bicubic_skip = bicubic_skip
        self.head = nn.Sequential(nn.Conv2d(in_channels, channels, 9, padding=4, padding_mode=padding),
                                  nn.PReLU(channels))
        self.body = nn.Sequential(
            *[ResidualBlock(channels, attention, batch_norm, reduction, padding) for _ in range(blocks)],
            nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm, padding_mode=padding),
            nn.BatchNorm2d(channels) if batch_norm else nn.Identity(),
        )
        upsample = []
        for _ in range(stages):
            upsample += [nn.Conv2d(channels, channels * 4, 3, padding=1, padding_mode=padding), nn.PixelShuffle(2),
                         nn.PReLU(channels)]
        self.upsample = nn.Sequential(*upsample)
        self.tail = nn.Conv2d(channels, in_channels, 9, padding=4, padding_mode=padding)

    def forward(self, lr: Tensor) -> Tensor:
        features = self.head(lr)
        sr = self.tail(self.upsample(features + self.body(features)))
        if self.bicubic_skip:
            sr = sr + F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return sr


class ClampedGenerator(nn.Module):
    """What every tool serves: a generator's output clamped to [0, 1], with no image border at a network border.

    LR [B, 1, h, w] in [0, 1] -> SR [B, 1, scale*h, scale*w] in [0, 1]. Training losses see the raw output;
    validation, test, evaluate, enhance, export and the benchmark go through this one forward. The input is
    first extended by BORDER pixels on each side, repeating its edge pixels, and that margin is cut off the
    output: the convolutions' padding sits BORDER pixels outside the image, where it used to draw a dark frame
    around every output, not at its outermost rows and columns.
    """

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, lr: Tensor) -> Tensor:
        sr = self.generator(F.pad(lr, (BORDER,) * 4, mode="replicate"))
        cut = (sr.shape[-1] // (lr.shape[-1] + 2 * BORDER)) * BORDER
        return sr[..., cut : sr.shape[-2] - cut, cut : sr.shape[-1] - cut].clamp(0.0, 1.0)
