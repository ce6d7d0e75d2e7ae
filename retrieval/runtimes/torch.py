"""torch itself: the reference every export is checked against, and the runtime on CUDA (AMP, channels_last)."""
from __future__ import annotations

import numpy as np
import torch


class TorchSession:
    """The network on its device; uint8 batches are normalised there (ToTensor's /255, then mean and std)."""

    def __init__(self, net: torch.nn.Module, device: torch.device, mean: tuple[float, ...],
                 std: tuple[float, ...]):
        self.device = device
        self.cuda = device.type == "cuda"
        net = net.eval().to(device)
        if self.cuda:
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    @torch.inference_mode()
    def __call__(self, uint8_batch: np.ndarray | torch.Tensor) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(uint8_batch)) if isinstance(uint8_batch, np.ndarray) \
            else uint8_batch
        if self.cuda:
            batch = batch.pin_memory()
        x = batch.to(self.device, non_blocking=True).float().div_(255.0).sub_(self.mean).div_(self.std)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.float16):
                out = self.net(x)
        else:
            out = self.net(x)
        return out.float().cpu().numpy()
