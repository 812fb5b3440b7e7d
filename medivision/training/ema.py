"""Exponential moving average (EMA) of a network's weights, used for validation, test and export."""

import copy

import torch
from torch import Tensor, nn


class EMA(nn.Module):
    """Holds `module`, a copy of a network whose parameters and floating buffers track the live ones.

    At training step n the decay is min(decay, (1 + n) / (10 + n)), so early averages are not dominated by
    the random initialisation (short runs would otherwise validate a nearly untrained network).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay={decay} must be in [0, 1)")
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int, accept: Tensor | None = None) -> None:
        """Move the average towards `model`'s current weights and buffers; `step` counts from 0.

        accept: bool [] on the device; when False (a skipped training batch) the average stays as it is,
        decided on the device.
        """
        n = float(step)
        weight = 1.0 - min(self.decay, (1.0 + n) / (10.0 + n))
        ema_params = list(self.module.parameters())
        if accept is not None:
            weight = accept * weight
            weights = [weight] * len(ema_params)  # a list of tensors: a single tensor weight is read by the host
        else:
            weights = weight
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], weights)
        for ema_buffer, buffer in zip(self.module.buffers(), model.buffers()):
            if ema_buffer.is_floating_point():
                ema_buffer.lerp_(buffer, weight)
            else:
                ema_buffer.copy_(buffer)
