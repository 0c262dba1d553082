"""Augmentation of whole batches on the training device: no per-sample Python, no DataLoader workers.

- `crop-flip`, the CIFAR recipe of the ResNet and DenseNet papers: pad every side with zeros (4 pixels at 32x32,
  size/8 in general, at least 1), cut a random size x size window per image, mirror half the images left-right.
  Padding happens before normalisation, so the border is black, exactly as torchvision's
  `RandomCrop(padding=4)` followed by `Normalize` makes it.
- `dihedral`: one of the 8 symmetries of the square per image (4 rotations, with or without a mirror), for
  microscopy, which has no up or left (Kensert et al. 2019); the images must be square.
- `none`.

Random draws come from the caller's `torch.Generator`, so a seed fixes every crop and flip.
"""

from typing import Literal

import torch
import torch.nn.functional as F

Augmentation = Literal["crop-flip", "dihedral", "none"]
AUGMENTATIONS = ("crop-flip", "dihedral", "none")


def crop_padding(size: int) -> int:
    """Zero padding for random crops: 4 at 32x32 (the standard), scaled with the image, at least 1."""
    return max(1, size // 8)


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """A random `H x W` window of each zero-padded image, by one gather over the batch."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen, device=x.device)
    rows = (dy + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (dx + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channels = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[batch, channels, rows, cols]


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def random_dihedral(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image rotated by a random multiple of 90 degrees, then mirrored with probability 1/2."""
    turns = torch.randint(0, 4, (x.shape[0],), generator=gen, device=x.device)
    out = x.clone()
    for k in (1, 2, 3):
        chosen = turns == k
        out[chosen] = torch.rot90(x[chosen], k, dims=(2, 3))
    return random_flip(out, gen)


def augment_batch(x: torch.Tensor, kind: Augmentation, gen: torch.Generator) -> torch.Tensor:
    """`x` (N, C, H, W, any dtype) augmented as `kind` says."""
    if kind == "none":
        return x
    if kind == "crop-flip":
        return random_flip(random_crop(x, crop_padding(x.shape[-1]), gen), gen)
    if kind == "dihedral":
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"dihedral augmentation needs square images, got {x.shape[-2]}x{x.shape[-1]}")
        return random_dihedral(x, gen)
    raise ValueError(f"unknown augmentation {kind!r} (known: {', '.join(AUGMENTATIONS)})")
