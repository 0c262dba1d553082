"""The network the transfer arm fine-tunes: input adaptation, an ImageNet backbone, and a new classifier head.

The trainer hands a model batches as they are stored (e.g. 32x32 CIFAR, or cell crops at the dataset's
`resize`), already standardised per channel. `TransferClassifier` adapts each batch on the device, inside
`forward`, instead of materialising 299x299 copies of a whole dataset in memory (4,832 BBBC021 crops at 299 px
would be 2.6 GB in float16 before any training):

- size: bilinear resize to the backbone's input size (224 ResNet50, 299 Inceptions; `baseline.input_size`
  overrides), anti-aliased when shrinking, as torchvision's `Resize` does; skipped when already that size.
- channels: ImageNet networks take 3. One channel (grey) is repeated to 3, the usual way to feed greyscale to
  an RGB network. Two channels (e.g. BBBC014's two stains) become the red and green of a false-colour
  composite with an empty (zero, i.e. the channel mean after standardisation) blue, as a bioimage viewer shows
  them. Three pass as they are (BBBC021: Actin, Tubulin, DAPI). More than three is refused.
"""

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import UserError
from nas.transfer.backbones import get_backbone
from nas.transfer.weights import apply_weights

RGB = 3


class TransferClassifier(nn.Module):
    """`net` (a backbone with its new head) behind an on-device resize and channel adaptation."""

    def __init__(self, net: nn.Module, input_size: int, in_channels: int):
        super().__init__()
        if not 1 <= in_channels <= RGB:
            raise UserError(f"the dataset has {in_channels} channels; the ImageNet backbones take 1, 2 or 3")
        self.net = net
        self.input_size = input_size
        self.in_channels = in_channels

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        """The batch as 3 channels at `input_size` x `input_size`."""
        if x.shape[1] == 1:
            x = x.expand(-1, RGB, -1, -1)
        elif x.shape[1] == 2:
            x = torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)
        size = (self.input_size, self.input_size)
        if tuple(x.shape[-2:]) != size:
            shrinking = x.shape[-1] > self.input_size or x.shape[-2] > self.input_size
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.adapt(x))


def build_classifier(
    model: str,
    num_classes: int,
    in_channels: int,
    *,
    state: Mapping[str, torch.Tensor] | None,
    input_size: int | None = None,
) -> TransferClassifier:
    """Backbone `model` with the checked ImageNet `state` copied in (None: from scratch), its head replaced for
    `num_classes`, every layer trainable, behind the input adaptation."""
    backbone = get_backbone(model)
    net = backbone.build(state is not None)
    if state is not None:
        apply_weights(net, backbone, state)
    net = backbone.replace_head(net, num_classes)
    net.requires_grad_(True)
    return TransferClassifier(net, input_size or backbone.input_size, in_channels)
