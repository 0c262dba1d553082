"""`dataset.resize`: whole NCHW arrays scaled to size x size, the low-fidelity option (e.g. CIFAR 32 -> 16).

Antialiased bilinear interpolation (torch's `interpolate(..., antialias=True)`, the same filter as PIL's
`Image.resize(BILINEAR)` and torchvision's `Resize` on tensors), done in chunks so that memory stays bounded.
uint8 arrays come back as uint8 (rounded and clipped), float arrays in their own dtype. Non-square images are
stretched to a square: the networks of this project take one input size.
"""

import numpy as np
import torch
import torch.nn.functional as F

CHUNK = 4096


def resize_images(x: np.ndarray, size: int) -> np.ndarray:
    """`x` (N, C, H, W) scaled to (N, C, size, size); returned unchanged when it already has that size."""
    if x.shape[2] == size and x.shape[3] == size:
        return x
    out = np.empty((x.shape[0], x.shape[1], size, size), dtype=x.dtype)
    for start in range(0, len(x), CHUNK):
        chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + CHUNK])).float()
        scaled = F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        if x.dtype == np.uint8:
            scaled = scaled.round().clamp(0, 255)
        out[start : start + CHUNK] = scaled.numpy().astype(x.dtype)
    return out
