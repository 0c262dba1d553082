"""The ImageNet backbones of the transfer arm (Kensert et al. 2019), registered by name in `BACKBONES`.

Each `Backbone` builds its network exactly as the published ImageNet weights were trained (1,000-class head,
InceptionV3 with its auxiliary head), so that a torchvision `state_dict` or a timm checkpoint loads key for key;
`replace_head` then swaps the classifier for the dataset's classes. Nothing here ever asks torchvision or timm for
pretrained weights: `weights=None` / `pretrained=False` always, and the weights come from a local file
(`nas.transfer.weights`).

InceptionV3 (torchvision) is built with `aux_logits=True` because the official file carries the `AuxLogits.*`
tensors; after loading, the auxiliary head is dropped (`aux_logits=False`, `AuxLogits=None`), because the paper
fine-tunes on the main output only and a second loss term would change the recipe. `transform_input=True`
matches torchvision's own construction with ImageNet weights (those weights were ported from TensorFlow and
expect inputs in [-1, 1]; the flag maps ImageNet-standardised inputs there, and our inputs are standardised per
channel by the trainer). InceptionResNetV2 comes from timm (torchvision has none).
"""

from collections.abc import Callable
from dataclasses import dataclass

import timm
import torchvision
from torch import nn

from nas.registry import Registry

IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class Backbone:
    """How to build one ImageNet network and where its classifier lives.

    `build(pretrained)` returns the network with its 1,000-class ImageNet head (random initial weights; the
    `pretrained` flag only chooses an initialisation that is cheap when it will be overwritten anyway).
    `ignored_prefixes` are state_dict prefixes a weights file may carry or omit at will (the classifier, which
    is replaced, and InceptionV3's auxiliary head, which is dropped). `min_input_size` is the smallest input
    the network accepts (the Inceptions' unpadded stride-2 stages need 75 px).
    """

    name: str
    title: str
    input_size: int
    build: Callable[[bool], nn.Module]
    ignored_prefixes: tuple[str, ...]
    replace_head: Callable[[nn.Module, int], nn.Module]
    min_input_size: int = 16


BACKBONES: Registry[Backbone] = Registry("backbone")


def register(backbone: Backbone) -> Backbone:
    return BACKBONES.register(backbone.name)(backbone)


def new_fc_head(model: nn.Module, num_classes: int) -> nn.Module:
    """torchvision's classifier is `model.fc`: a new Linear with PyTorch's default initialisation."""
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def build_resnet50(pretrained: bool) -> nn.Module:
    return torchvision.models.resnet50(weights=None, num_classes=IMAGENET_CLASSES)


def build_inception_v3(pretrained: bool) -> nn.Module:
    """torchvision InceptionV3 shaped like its ImageNet file; `init_weights` is skipped when weights will follow
    (its truncated-normal initialisation is slow and would be overwritten)."""
    return torchvision.models.inception_v3(
        weights=None,
        num_classes=IMAGENET_CLASSES,
        aux_logits=True,
        transform_input=True,
        init_weights=not pretrained,
    )


def inception_v3_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Drop the auxiliary head (fine-tuning uses the main output only) and replace the classifier."""
    model.aux_logits = False
    model.AuxLogits = None
    return new_fc_head(model, num_classes)


def build_inception_resnet_v2(pretrained: bool) -> nn.Module:
    return timm.create_model("inception_resnet_v2", pretrained=False, num_classes=IMAGENET_CLASSES)


def timm_head(model: nn.Module, num_classes: int) -> nn.Module:
    """timm's own way to replace a classifier (a new Linear on the pooled features)."""
    model.reset_classifier(num_classes)
    return model


RESNET50 = register(Backbone("resnet50", "ResNet50", 224, build_resnet50, ("fc.",), new_fc_head))
INCEPTION_V3 = register(
    Backbone("inception_v3", "InceptionV3", 299, build_inception_v3, ("fc.", "AuxLogits."), inception_v3_head, 75)
)
INCEPTION_RESNET_V2 = register(
    Backbone("inception_resnet_v2", "InceptionResNetV2", 299, build_inception_resnet_v2, ("classif.",), timm_head, 75)
)


def get_backbone(name: str, key: str | None = "baseline.model") -> Backbone:
    """The registered backbone `name`; an unknown name is a `UserError` naming `key`."""
    return BACKBONES.get(name, key=key)
