"""Self-supervised adaptation of a through-plane model to one scan (SMORE's idea, started from a trained prior).

A thick-slice scan is sharp in-plane. Its own in-plane slices, degraded along one in-plane axis with the scan's
slice geometry (profile, thickness, gap) and interpolated back exactly as its through-plane images are, make
training pairs of that very scan: same contrast, noise, anatomy and scanner. A few minutes of fine-tuning on them
from the general prior (medivision/weights/general_thick) fits the prior to the scan without external data.
PyTorch (the [train] extra), on the CPU or a GPU.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from medivision.data.slice_profile import SliceGeometry, slab_operator
from medivision.inference.torch_model import TorchSR

logger = logging.getLogger(__name__)

# A crop whose target is darker than this everywhere is background; a few are kept, most are drawn again.
BACKGROUND = 0.05
# Steps between checks of the held-out slices.
CHECK_EVERY = 25


class Adapted(NamedTuple):
    """What adaptation made: the model to use, the steps taken, and the step whose weights it holds (0: the prior,
    when no check of the held-out slices found the fine-tuned weights better)."""

    model: TorchSR
    steps: int
    best_step: int


def adapt(model: TorchSR, acquired: np.ndarray, geometries: tuple[SliceGeometry, SliceGeometry], seconds: float = 120.0,
          steps: int = 2000, batch_size: int = 16, patch: int = 64, learning_rate: float = 5e-4,
          seed: int = 0) -> Adapted:
    """A copy of `model` fine-tuned on `acquired` float32 [m, a, b] in [0, 1] (slice axis first), for at most
    `seconds` of training or `steps` steps, whichever ends first, with a progress bar. The L1 loss on
    patch x patch crops of the in-plane slices, each degraded along its rows (axis a, with geometries[0]: the slab
    geometry in a's pixels) and, transposed, along its columns (geometries[1], in b's pixels); Adam at
    `learning_rate`. Every fifth slice is held out: every CHECK_EVERY steps the L1 on fixed crops of those is
    measured, and the weights that scored best there (the prior's own included) are the ones returned, so
    adaptation that does not pay on the scan itself (a small volume overfitted) leaves the prior."""
    adapted = copy.deepcopy(model)
    network = adapted.generator.generator.requires_grad_(True)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    start, taken = time.perf_counter(), 0
    with torch.inference_mode(False), tqdm(total=steps, desc="adapting", unit="step", leave=False) as bar:
        inputs, targets = _pairs(acquired, geometries, adapted.device)
        held_out = [index % 5 == 2 for index in range(len(acquired))] if len(acquired) > 2 else [False] * len(
            acquired)
        train = [(x[[not h for h in held_out]], y[[not h for h in held_out]]) for x, y in zip(inputs, targets)]
        check = _crops(*zip(*[(x[held_out], y[held_out]) for x, y in zip(inputs, targets)]), 4 * batch_size, patch,
                       torch.Generator().manual_seed(seed + 1)) if any(held_out) else ()
        best = (_held_out_l1(network, check), 0, copy.deepcopy(network.state_dict())) if check else None
        while taken < steps and time.perf_counter() - start < seconds:
            network.train()
            low, high = _crops(*zip(*train), batch_size, patch, generator)
            loss = torch.nn.functional.l1_loss(network(low), high)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            taken += 1
            bar.update()
            if check and (taken % CHECK_EVERY == 0 or taken == steps):
                score = _held_out_l1(network, check)
                if score < best[0]:
                    best = (score, taken, copy.deepcopy(network.state_dict()))
                bar.set_postfix(held_out_l1=f"{score:.4f}", best_step=best[1])
    if best:
        network.load_state_dict(best[2])
    else:  # a volume of two slices holds none out: its last weights are kept
        best = (None, taken, None)
    network.eval()
    logger.info("adapted %s to the scan: %d steps in %.0f s; the weights of step %d scored best on the held-out "
                "slices", model.name, taken, time.perf_counter() - start, best[1])
    return Adapted(adapted, taken, best[1])


def _held_out_l1(network: torch.nn.Module, check: tuple[Tensor, Tensor]) -> float:
    """The L1 of `network` on the held-out crops (input, target)."""
    network.eval()
    with torch.no_grad():
        return float(torch.nn.functional.l1_loss(network(check[0]), check[1]))


def _pairs(acquired: np.ndarray, geometries: tuple[SliceGeometry, SliceGeometry],
           device: torch.device) -> tuple[list[Tensor], list[Tensor]]:
    """(inputs, targets): per orientation (rows of the in-plane slices degraded, then columns), float32
    [m, 1, h, w] each: the degraded-and-interpolated slices, clipped to [0, 1] as training's, and the slices."""
    inputs, targets = [], []
    for slices, geometry in zip((acquired, acquired.transpose(0, 2, 1)), geometries):
        operator = slab_operator(geometry, slices.shape[1]).astype(np.float32)
        degraded = np.clip(np.einsum("ij,mjk->mik", operator, slices), 0.0, 1.0)
        inputs.append(torch.from_numpy(np.ascontiguousarray(degraded[:, None], np.float32)).to(device))
        targets.append(torch.from_numpy(np.ascontiguousarray(slices[:, None], np.float32)).to(device))
    return inputs, targets


def _crops(inputs: list[Tensor], targets: list[Tensor], batch_size: int, patch: int,
           generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A batch of random crops [B, 1, p, p] (p = patch, or less for small slices), from random slices and
    orientations, most of them on the anatomy."""
    low, high = [], []
    while len(low) < batch_size:
        side = int(torch.randint(len(inputs), (1,), generator=generator))
        source, target = inputs[side], targets[side]
        height, width = target.shape[-2:]
        size = min(patch, height, width)
        index = int(torch.randint(len(target), (1,), generator=generator))
        top = int(torch.randint(height - size + 1, (1,), generator=generator))
        left = int(torch.randint(width - size + 1, (1,), generator=generator))
        crop = target[index, :, top:top + size, left:left + size]
        if crop.max() < BACKGROUND and torch.rand(1, generator=generator) > 0.1:
            continue
        low.append(source[index, :, top:top + size, left:left + size])
        high.append(crop)
    return torch.stack(low), torch.stack(high)
