"""SRResNet generator (Ledig et al., 2017) with an attention gate in every residual block."""

import math

import torch.nn.functional as F
from torch import Tensor, nn

from medivision.nets.attention import AttentionFactory, attention_factory

# normalize: inputs darker than this are scaled as if this were their maximum, so the output of a blank image stays
# within about this of blank.
NORMALIZE_FLOOR = 1e-3
# LR pixels of repeated margin around every input that ClampedGenerator serves (cut off the output again).
BORDER = 4


class ResidualBlock(nn.Module):
    """conv-(BN)-PReLU-conv-(BN), then the attention gate `attention` builds, plus the skip. [B, C, H, W] -> same."""

    def __init__(self, channels: int, attention: AttentionFactory, batch_norm: bool, reduction: int):
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(channels)) if batch_norm else nn.Identity
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm),
            norm(),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm),
            norm(),
        )
        self.attention = attention(channels, reduction)

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
        scale: 2, 4 or 8, one PixelShuffle x2 stage per factor of two; or 1, no upsampling: the input is already on
            the output grid (through-plane models refine an interpolated image, medivision.data.slice_profile).
        attention: none | channel | spatial | cbam, in every residual block.
        batch_norm: BatchNorm in the residual blocks, as in SRResNet.
        reduction: channel-gate MLP reduction.
        normalize: divide each input by its own maximum and multiply the output back, so the network sees every
            image at full brightness and SR(a * lr) = a * SR(lr): a scan that the intensity policy left dark
            (a few hot voxels setting its range) is enhanced like a bright one.
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
        normalize: bool = False,
    ):
        super().__init__()
        stages = int(math.log2(scale)) if scale > 0 else 0
        if scale < 1 or 2**stages != scale:
            raise ValueError(f"scale={scale} must be a power of two (1, 2, 4, 8)")
        if blocks < 1 or channels < 1:
            raise ValueError(f"blocks={blocks} and channels={channels} must be positive")
        self.scale = scale
        self.bicubic_skip = bicubic_skip
        self.normalize = normalize
        gate = attention_factory(attention)
        self.head = nn.Sequential(nn.Conv2d(in_channels, channels, 9, padding=4), nn.PReLU(channels))
        self.body = nn.Sequential(
            *[ResidualBlock(channels, gate, batch_norm, reduction) for _ in range(blocks)],
            nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm),
            nn.BatchNorm2d(channels) if batch_norm else nn.Identity(),
        )
        upsample = []
        for _ in range(stages):
            upsample += [nn.Conv2d(channels, channels * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(channels)]
        self.upsample = nn.Sequential(*upsample)
        self.tail = nn.Conv2d(channels, in_channels, 9, padding=4)

    def forward(self, lr: Tensor) -> Tensor:
        if self.normalize:
            level = lr.flatten(1).amax(1).clamp_min(NORMALIZE_FLOOR).view(-1, 1, 1, 1)
            return level * self._upscale(lr / level)
        return self._upscale(lr)

    def _upscale(self, lr: Tensor) -> Tensor:
        features = self.head(lr)
        sr = self.tail(self.upsample(features + self.body(features)))
        if self.bicubic_skip:
            sr = sr + (lr if self.scale == 1 else F.interpolate(lr, scale_factor=self.scale, mode="bicubic",
                                                                align_corners=False))
        return sr


class ClampedGenerator(nn.Module):
    """What every tool serves: a generator's output clamped to [0, 1], with no image border at a network border.

    LR [B, 1, h, w] in [0, 1] -> SR [B, 1, scale*h, scale*w] in [0, 1]. Training losses see the raw output;
    validation, test, evaluate, enhance, export and the benchmark go through this one forward. The input is
    first extended by BORDER pixels on each side, repeating its edge pixels, and that margin is cut off the
    output: the convolutions' zero padding, which darkens the rows and columns next to it, sits BORDER pixels
    outside the image instead of drawing a dark frame around every output.
    """

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, lr: Tensor) -> Tensor:
        sr = self.generator(F.pad(lr, (BORDER,) * 4, mode="replicate"))
        cut = (sr.shape[-1] // (lr.shape[-1] + 2 * BORDER)) * BORDER
        return sr[..., cut : sr.shape[-2] - cut, cut : sr.shape[-1] - cut].clamp(0.0, 1.0)
