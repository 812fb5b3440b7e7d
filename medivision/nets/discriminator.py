"""VGG-style discriminator of SRGAN for 128x128 (or any 16-divisible) single-channel images."""

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as apply_spectral_norm


class Discriminator(nn.Module):
    """Scores images [B, in_channels, H, W] in [0, 1] with one real-vs-fake logit each: [B].

    Eight 3x3 convolutions (widths base, base, 2b, 2b, 4b, 4b, 8b, 8b; every second one strided), then
    global average pooling and a two-layer head. With `spectral_norm` every layer is spectrally normalised
    and BatchNorm is dropped; otherwise the convolutions after the first carry BatchNorm, as in SRGAN.
    """

    def __init__(self, in_channels: int = 1, base_channels: int = 64, spectral_norm: bool = False):
        super().__init__()
        wrap = apply_spectral_norm if spectral_norm else (lambda layer: layer)
        layers: list[nn.Module] = []
        width_in = in_channels
        for index in range(8):
            width = base_channels * 2 ** (index // 2)
            stride = 2 if index % 2 else 1
            layers.append(wrap(nn.Conv2d(width_in, width, 3, stride=stride, padding=1)))
            if index > 0 and not spectral_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            width_in = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            wrap(nn.Linear(width_in, width_in * 2)),
            nn.LeakyReLU(0.2, inplace=True),
            wrap(nn.Linear(width_in * 2, 1)),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images)).squeeze(1)
