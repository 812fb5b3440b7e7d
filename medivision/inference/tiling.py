"""Super-resolving images of any size: whole when small, in overlapping blended tiles when large."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Network = Callable[[np.ndarray], np.ndarray]  # float32 [B, 1, h, w] in [0, 1] -> [B, 1, s*h, s*w] in [0, 1]


def super_resolve(model: Network, lr: np.ndarray, scale: int, tile: int = 256, overlap: int = 32,
                  batch_size: int = 16) -> np.ndarray:
    """Super-resolve a batch of images of any size and channel count, tiling the large ones.

    lr: float32 [N, C, h, w] in [0, 1]; every channel goes through the 1-channel network on its own.
    Returns float32 [N, C, scale*h, scale*w] in [0, 1].

    Images up to `tile` LR pixels on both sides run whole, `batch_size` at a time. Larger ones are cut
    into tile x tile pieces overlapping by `overlap` pixels, so memory stays bounded whatever the image
    size. Where tiles overlap they are blended with weights that are zero within overlap/4 of a tile's
    inner edge (whose outputs saw the tile's border rather than the neighbouring pixels) and ramp
    linearly across the rest. A network with a receptive radius up to overlap/4 LR pixels gives
    exactly the untiled result; CBAM's channel gate pools each tile's own features, so with it tiles
    differ slightly from the whole image, which is why the default tile covers a whole 256x256 slice.
    """
    if overlap < 0 or tile <= 2 * overlap:
        raise ValueError(f"tile={tile} must exceed twice overlap={overlap}, and overlap must be >= 0")
    count, channels, height, width = lr.shape
    planes = np.ascontiguousarray(lr.reshape(count * channels, 1, height, width), dtype=np.float32)
    if height <= tile and width <= tile:
        out = np.concatenate([model(planes[i:i + batch_size]) for i in range(0, len(planes), batch_size)])
    else:
        out = np.concatenate([_tiled(model, plane[None], scale, tile, overlap) for plane in planes])
    return out.reshape(count, channels, height * scale, width * scale)


def _tiled(model: Network, lr: np.ndarray, scale: int, tile: int, overlap: int) -> np.ndarray:
    """One image [1, 1, h, w] -> [1, 1, scale*h, scale*w], tile by tile (see super_resolve)."""
    height, width = lr.shape[-2:]
    out = np.zeros((1, 1, height * scale, width * scale), np.float32)
    weight = np.zeros_like(out)
    for top in _starts(height, tile, overlap):
        for left in _starts(width, tile, overlap):
            piece = np.ascontiguousarray(lr[..., top:top + tile, left:left + tile])
            rows = _window(piece.shape[-2], top > 0, top + tile < height, overlap, scale)
            cols = _window(piece.shape[-1], left > 0, left + tile < width, overlap, scale)
            blend = rows[:, None] * cols[None, :]
            region = (..., slice(top * scale, (top + piece.shape[-2]) * scale),
                      slice(left * scale, (left + piece.shape[-1]) * scale))
            out[region] += model(piece) * blend
            weight[region] += blend
    return out / weight


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile offsets covering [0, length): every `tile - overlap` pixels, the last one flush with the end."""
    if length <= tile:
        return [0]
    return list(range(0, length - tile, tile - overlap)) + [length - tile]


def _window(size: int, inner_start: bool, inner_end: bool, overlap: int, scale: int) -> np.ndarray:
    """Blending weights along one side of a tile, in SR pixels: float32 [size * scale], in [0, 1]."""
    n, margin, ramp = size * scale, overlap // 4 * scale, (overlap - 2 * (overlap // 4)) * scale
    distance = np.arange(n, dtype=np.float32)
    weights = np.ones(n, np.float32)
    # 0 for the first `margin` pixels from an inner edge, then a linear ramp to 1 over `ramp` pixels;
    # a neighbour's window over the same overlap is the mirror image, so the two add up to one there.
    rising = np.clip((distance - margin + 0.5) / max(ramp, 1), 0.0, 1.0)
    if inner_start:
        weights = np.minimum(weights, rising)
    if inner_end:
        weights = np.minimum(weights, rising[::-1])
    return weights
