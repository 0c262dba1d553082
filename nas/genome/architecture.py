"""`architecture.yaml`: a genome decoded into the exact network of DESIGN.md section 2, read and written.

An `Architecture` is what `build_model` builds: the fixed parts (input channels, classes, input size, stem,
bottleneck width, compression) plus the genome's blocks. Files are validated in full on load, so every bad
field is a one-line `UserError` naming the file and the key, and written atomically.

`stem_stride` (1, 2 or 4; optional, default 1) is how much the stem shrinks the image before the first block: 1
is the plain conv 3x3 of DESIGN.md section 2, 2 gives that conv stride 2, 4 adds a max pool 3x3 stride 2
(padding 1) after it, as ResNet's stem does, so that 128-512 px images train at the cost of 32-128 px ones. A
file leaves the key out at 1, so every architecture written before it existed reads and writes unchanged.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.atomicfile import atomic_write_text
from nas.errors import UserError, shown
from nas.genome.channels import block_channels
from nas.genome.genome import Genome, positive_int
from nas.genome.space import SearchSpace, compression_value, stem_stride_value
from nas.yamlfile import dump_yaml, load_yaml_mapping

ARCH_FORMAT = "nas-architecture/1"
FIXED_KEYS = ("in_channels", "num_classes", "input_size", "stem_channels", "bottleneck_width", "compression")
OPTIONAL_KEYS = {"stem_stride": 1}  # fixed parts a file holds only when they differ from this default


@dataclass(frozen=True)
class Architecture:
    """A complete network description: fixed parts plus the searched genome."""

    in_channels: int
    num_classes: int
    input_size: int
    stem_channels: int
    bottleneck_width: int
    compression: float
    genome: Genome
    stem_stride: int = 1
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_space(
        cls, space: SearchSpace, genome: Genome, in_channels: int, num_classes: int, input_size: int
    ) -> "Architecture":
        return cls(
            in_channels=in_channels,
            num_classes=num_classes,
            input_size=input_size,
            stem_channels=space.stem_channels,
            bottleneck_width=space.bottleneck_width,
            compression=space.compression,
            genome=genome,
            stem_stride=space.stem_stride,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": ARCH_FORMAT}
        out.update({k: getattr(self, k) for k in FIXED_KEYS})
        out.update({k: getattr(self, k) for k, default in OPTIONAL_KEYS.items() if getattr(self, k) != default})
        out.update(self.genome.to_dict())
        if self.provenance:
            out["provenance"] = dict(self.provenance)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Architecture":
        """Validate an architecture mapping; raises `UserError` naming the first bad key."""
        if data.get("format") != ARCH_FORMAT:
            raise UserError(f"must be {ARCH_FORMAT!r}, got {shown(data.get('format'))}", key="format")
        known = {"format", *FIXED_KEYS, *OPTIONAL_KEYS, "blocks", "learning_rate", "provenance"}
        unknown = set(data) - known
        if unknown:
            raise UserError("unknown key", key=shown(min(unknown, key=str)).strip("'"))
        for name in (*FIXED_KEYS, "blocks"):
            if name not in data:
                raise UserError("is missing", key=name)
        provenance = data.get("provenance") or {}
        if not isinstance(provenance, dict):
            raise UserError("must be a mapping", key="provenance")
        genome = Genome.from_dict({k: data[k] for k in ("blocks", "learning_rate") if k in data}, key="")
        arch = cls(
            in_channels=positive_int(data["in_channels"], "in_channels", 64),
            num_classes=positive_int(data["num_classes"], "num_classes", 100_000),
            input_size=positive_int(data["input_size"], "input_size", 4096),
            stem_channels=positive_int(data["stem_channels"], "stem_channels", 4096),
            bottleneck_width=positive_int(data["bottleneck_width"], "bottleneck_width", 64),
            compression=compression_value(data["compression"], "compression"),
            genome=genome,
            stem_stride=stem_stride_value(data.get("stem_stride", 1), "stem_stride"),
            provenance=provenance,
        )
        check_input_size(arch.input_size, len(genome.blocks), "input_size", arch.stem_stride)
        for i, (c_in, _) in enumerate(block_channels(arch)[1:], start=1):  # (input, output) per block
            if c_in < 1:
                raise UserError(f"leaves 0 channels after block {i - 1} (floor(c * compression))", key="compression")
        return arch


def stem_output_size(input_size: int, stem_stride: int) -> int:
    """The side of the stem's feature map: each stride-2 stage (padding 1, kernel 3) gives ceil(n / 2)."""
    return -(-input_size // stem_stride)


def check_input_size(input_size: int, num_blocks: int, key: str, stem_stride: int = 1) -> None:
    """Each transition halves the feature map (average pool 2x2, stride 2), so `num_blocks` blocks need a stem
    output of at least 2**(num_blocks - 1) pixels; a smaller one would fail inside torch with an empty feature
    map."""
    need = 2 ** (num_blocks - 1)
    if stem_output_size(input_size, stem_stride) < need:
        need_in = (need - 1) * stem_stride + 1  # the smallest n with ceil(n / stride) >= need
        stem = "" if stem_stride == 1 else f" after a stem of stride {stem_stride}"
        raise UserError(f"{num_blocks} blocks need an input of at least {need_in} px{stem}, got {input_size}",
                        key=key)  # fmt: skip


def load_architecture(path: str | Path) -> Architecture:
    """Read and validate an `architecture.yaml`."""
    data = load_yaml_mapping(path, "architecture file")
    try:
        return Architecture.from_dict(data)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def save_architecture(arch: Architecture, path: str | Path) -> None:
    """Write `arch` as `architecture.yaml`, atomically."""
    atomic_write_text(path, dump_yaml(arch.to_dict()))
