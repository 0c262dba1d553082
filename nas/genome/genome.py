"""A `Genome`: the searched part of a network, both levels side by side, and its canonical key.

The architecture level (per block: layers, growth rate; optionally a learning rate) and the shortcut level (per
block: a bitstring) are separate encodings that evolve by different algorithms; a genome only pairs them so a
candidate can be trained, cached and logged as one thing. Its key is the sha256 of its canonical JSON (sorted
keys, no spaces), so two genomes are the same candidate exactly when their keys are equal, whatever the key
order of the file they came from.
"""

import functools
import hashlib
import json
import sys
from dataclasses import dataclass
from typing import Any

from nas.errors import UserError, shown
from nas.genome import shortcuts


@dataclass(frozen=True)
class BlockGene:
    """One dense block: its depth, its growth rate and its shortcut bits."""

    layers: int
    growth_rate: int
    shortcuts: str

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "growth_rate": self.growth_rate, "shortcuts": self.shortcuts}


@dataclass(frozen=True)
class Genome:
    """The searched part of a candidate network. Fixed parts (stem, compression, classes) live elsewhere."""

    blocks: tuple[BlockGene, ...]
    learning_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"blocks": [b.to_dict() for b in self.blocks]}
        if self.learning_rate is not None:
            out["learning_rate"] = self.learning_rate
        return out

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @functools.cached_property
    def key(self) -> str:
        """Computed once per genome (a frozen value): drivers and strategies look keys up per candidate."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @property
    def architecture_level(self) -> tuple[tuple[int, int], ...]:
        """(layers, growth_rate) per block: what PSO searches."""
        return tuple((b.layers, b.growth_rate) for b in self.blocks)

    @property
    def shortcut_level(self) -> tuple[str, ...]:
        """The bitstring per block: what the GA searches."""
        return tuple(b.shortcuts for b in self.blocks)

    @classmethod
    def from_dict(cls, data: Any, key: str = "genome") -> "Genome":
        """Parse and validate a genome mapping (from a log line or an architecture file)."""
        if not isinstance(data, dict):
            raise UserError("must be a mapping", key=key)
        unknown = set(data) - {"blocks", "learning_rate"}
        if unknown:
            raise UserError(f"unknown key {shown(min(unknown, key=str))}", key=key)
        prefix = f"{key}." if key else ""
        blocks = data.get("blocks")
        if not isinstance(blocks, list) or not blocks:
            raise UserError("must be a non-empty list of blocks", key=f"{prefix}blocks")
        genes = tuple(parse_block(b, f"{prefix}blocks[{i}]") for i, b in enumerate(blocks))
        lr = data.get("learning_rate")
        if lr is not None:
            if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr <= sys.float_info.max:
                raise UserError("must be a positive number", key=f"{prefix}learning_rate")
            lr = float(lr)
        return cls(blocks=genes, learning_rate=lr)


def positive_int(value: Any, key: str, maximum: int = 10_000) -> int:
    """`value` as an int in [1, maximum], or a `UserError` naming `key`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"must be an integer, not {type(value).__name__}", key=key)
    if not 1 <= value <= maximum:
        raise UserError(f"must be in [1, {maximum}], got {shown(value)}", key=key)
    return value


def parse_block(data: Any, key: str) -> BlockGene:
    """Validate one block mapping: `layers` >= 1, `growth_rate` >= 1, a shortcut string of the right length."""
    if not isinstance(data, dict):
        raise UserError("must be a mapping with layers, growth_rate, shortcuts", key=key)
    unknown = set(data) - {"layers", "growth_rate", "shortcuts"}
    if unknown:
        raise UserError(f"unknown key {shown(min(unknown, key=str))}", key=key)
    for name in ("layers", "growth_rate", "shortcuts"):
        if name not in data:
            raise UserError("is missing", key=f"{key}.{name}")
    layers = positive_int(data["layers"], f"{key}.layers", maximum=200)
    growth = positive_int(data["growth_rate"], f"{key}.growth_rate", maximum=4096)
    bits = shortcuts.validate(data["shortcuts"], layers, key=f"{key}.shortcuts")
    return BlockGene(layers=layers, growth_rate=growth, shortcuts=bits)
