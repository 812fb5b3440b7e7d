"""Speed options for a network: channels-last memory layout and torch.compile."""

import torch
from torch import nn


def apply_speed_options(network: nn.Module, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """Change how `network` runs, not what it computes (outputs agree up to float rounding).

    channels_last: weights in NHWC layout, which cuDNN's tensor-core convolutions and oneDNN's CPU kernels
    prefer; a convolution with NHWC weights gives NHWC activations, so inputs need no conversion.
    compile: torch.compile the network in place (`nn.Module.compile`): parameter names, state dicts and
    checkpoints stay as they are. The first batches are slow while the graphs compile.
    Returns `network`, changed in place.
    """
    if channels_last:
        network.to(memory_format=torch.channels_last)
    if compile:
        network.compile()
    return network
