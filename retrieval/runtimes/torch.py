"""torch itself: the reference every export is checked against, and the runtime on CUDA (AMP, channels_last)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch


class TorchSession:
    """The network on its device; uint8 batches are normalised on that device (see Preprocess.normalise)."""

    def __init__(self, net: torch.nn.Module, device: torch.device,
                 normalise: Callable[[torch.Tensor], torch.Tensor]):
        self.device, self.normalise = device, normalise
        self.cuda = device.type == "cuda"
        net = net.eval().to(device)
        if self.cuda:
            net = net.to(memory_format=torch.channels_last)
        self.net = net

    @torch.inference_mode()
    def __call__(self, uint8_batch: torch.Tensor) -> np.ndarray:
        x = self.normalise(uint8_batch.to(self.device, non_blocking=True))
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.float16):
                out = self.net(x)
        else:
            out = self.net(x)
        return out.float().cpu().numpy()
