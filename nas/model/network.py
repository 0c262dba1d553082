"""`build_model`: an `Architecture` -> the exact `nn.Module` of DESIGN.md section 2.

Stem (conv3x3, BN, ReLU; with `stem_stride` 2 the conv has stride 2, with 4 a max pool 3x3 stride 2 follows);
dense blocks whose inputs follow the shortcut bits (the chain always, plus every
source whose bit is 1, concatenated in ascending node order); DenseNet-BC bottleneck layers; transitions
(BN, ReLU, conv1x1 to floor(c * compression), avgpool 2x2) between blocks; head (BN, ReLU, global average
pool, Linear). Channel bookkeeping lives in `nas.genome.channels`, shared with the analytic cost.
"""

import torch
from torch import nn

from nas.genome import shortcuts
from nas.genome.architecture import Architecture
from nas.genome.channels import block_channels, layer_input_channels
from nas.genome.genome import BlockGene


class BottleneckLayer(nn.Sequential):
    """DenseNet-BC layer: BN, ReLU, conv1x1 (-> width*k), BN, ReLU, conv3x3 (-> k)."""

    def __init__(self, in_channels: int, growth_rate: int, bottleneck_width: int):
        mid = bottleneck_width * growth_rate
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, growth_rate, 3, padding=1, bias=False),
        )


class ShortcutBlock(nn.Module):
    """A dense block whose connectivity is a shortcut bitstring; all ones is a DenseNet block."""

    def __init__(self, block: BlockGene, in_channels: int, bottleneck_width: int):
        super().__init__()
        widths = layer_input_channels(block, in_channels)
        self.inputs = [shortcuts.inputs_of(block.shortcuts, block.layers, t) for t in range(1, block.layers + 2)]
        self.layers = nn.ModuleList(
            BottleneckLayer(widths[t], block.growth_rate, bottleneck_width) for t in range(block.layers)
        )
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for layer, sources in zip(self.layers, self.inputs, strict=False):
            nodes.append(layer(gather(nodes, sources)))
        return gather(nodes, self.inputs[-1])


def gather(nodes: list[torch.Tensor], sources: list[int]) -> torch.Tensor:
    """Concatenate the chosen nodes along channels (no copy for a single source)."""
    return nodes[sources[0]] if len(sources) == 1 else torch.cat([nodes[s] for s in sources], dim=1)


class Transition(nn.Sequential):
    """Between blocks: BN, ReLU, conv1x1 (c -> floor(c * compression)), avgpool 2x2 stride 2."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.AvgPool2d(2, stride=2),
        )


def stem(arch: Architecture) -> nn.Sequential:
    """Conv 3x3, BN, ReLU, and a max pool for a stride of 4: a pool holds no weights, so every stem has the same
    `state_dict` keys whatever its stride."""
    conv_stride = min(arch.stem_stride, 2)
    parts: list[nn.Module] = [
        nn.Conv2d(arch.in_channels, arch.stem_channels, 3, stride=conv_stride, padding=1, bias=False),
        nn.BatchNorm2d(arch.stem_channels),
        nn.ReLU(inplace=True),
    ]
    if arch.stem_stride == 4:
        parts.append(nn.MaxPool2d(3, stride=2, padding=1))
    return nn.Sequential(*parts)


class SearchedNet(nn.Module):
    """The network an `architecture.yaml` describes."""

    def __init__(self, arch: Architecture):
        super().__init__()
        self.stem = stem(arch)
        stages: list[nn.Module] = []
        channels = block_channels(arch)
        for i, (block, (c_in, c_out)) in enumerate(zip(arch.genome.blocks, channels, strict=True)):
            stages.append(ShortcutBlock(block, c_in, arch.bottleneck_width))
            if i < len(channels) - 1:
                stages.append(Transition(c_out, channels[i + 1][0]))
        self.features = nn.Sequential(*stages)
        final = channels[-1][1]
        self.head = nn.Sequential(nn.BatchNorm2d(final), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(final, arch.num_classes)
        initialise(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.features(self.stem(x))))


def initialise(model: nn.Module) -> None:
    """Kaiming normal convs, BN weight 1 / bias 0, Linear bias 0 (DESIGN.md section 2)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


def build_model(arch: Architecture) -> nn.Module:
    """Build the network of `arch` (freshly initialised, on the CPU)."""
    return SearchedNet(arch)
