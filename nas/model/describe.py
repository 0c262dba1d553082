"""`nas inspect FILE`: what an architecture file builds, or what a search-space file spans.

The file's `format` tag decides which: `nas-architecture/1` gives per-block channels, params and FLOPs at the
file's input size; `nas-search-space/1` gives the particle's dimensions and the shortcut bit-length range.
`inspect_command` takes its arguments as typed parameters (`nas.cli` turns the parsed flags into them), so
Python code calls it directly, without the command line's parser.
"""

import json
from pathlib import Path
from typing import Any

from nas.errors import UserError, shown
from nas.genome.architecture import ARCH_FORMAT, load_architecture
from nas.genome.shortcuts import bit_length
from nas.genome.space import SPACE_FORMAT, load_space
from nas.genome.spaces import is_space_name, resolve_space
from nas.yamlfile import load_yaml_mapping


def describe_architecture(path: str) -> dict[str, Any]:
    arch = load_architecture(path)
    from nas.config import LimitsConfig
    from nas.genome.channels import block_channels
    from nas.model.analytic_cost import check_cost

    try:  # the default limits, at one image: inspecting builds the network once and runs one forward pass
        check_cost(arch, LimitsConfig(), 1, "this architecture")
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    from nas.model.cost import architecture_cost  # torch is imported only once the file is known good

    params, flops = architecture_cost(arch)
    blocks = [
        {
            "layers": b.layers,
            "growth_rate": b.growth_rate,
            "shortcut_bits": bit_length(b.layers),
            "shortcuts_on": b.shortcuts.count("1"),
            "in_channels": c_in,
            "out_channels": c_out,
        }
        for b, (c_in, c_out) in zip(arch.genome.blocks, block_channels(arch), strict=True)
    ]
    return {
        "kind": "architecture",
        "file": path,
        "in_channels": arch.in_channels,
        "num_classes": arch.num_classes,
        "input_size": arch.input_size,
        "stem_stride": arch.stem_stride,
        "blocks": blocks,
        "params": params,
        "flops": flops,
    }


def describe_space(path: str) -> dict[str, Any]:
    space = load_space(path)
    low, high = space.bit_length_range()
    return {
        "kind": "search-space",
        "file": path,
        "name": space.name,
        "dimensions": [{"name": d.name, "low": d.low, "high": d.high} for d in space.dimensions],
        "bit_length_range": [low, high],
        "stem_stride": space.stem_stride,
    }


def format_text(info: dict[str, Any]) -> str:
    if info["kind"] == "search-space":
        lines = [f"search space {info['name']} ({len(info['dimensions'])} dimensions)"]
        lines += [f"  {d['name']:<24} [{d['low']:g}, {d['high']:g}]" for d in info["dimensions"]]
        low, high = info["bit_length_range"]
        lines.append(f"  shortcut bits: {low} to {high}")
        if info["stem_stride"] != 1:
            stride = info["stem_stride"]
            lines.append(f"  stem stride: {stride} (the first block sees 1/{stride} of the input side)")
        return "\n".join(lines)
    head = f"architecture {info['file']}: {info['in_channels']}x{info['input_size']}x{info['input_size']}"
    stem = "" if info["stem_stride"] == 1 else f", stem stride {info['stem_stride']}"
    lines = [f"{head} -> {info['num_classes']} classes{stem}"]
    for i, b in enumerate(info["blocks"]):
        lines.append(
            f"  block {i}: {b['layers']} layers, growth {b['growth_rate']}, "
            f"shortcuts {b['shortcuts_on']}/{b['shortcut_bits']}, channels {b['in_channels']} -> {b['out_channels']}"
        )
    lines.append(f"  params {info['params']:,}  flops {info['flops']:,}")
    return "\n".join(lines)


def inspect_command(file: str | Path, *, as_json: bool = False) -> int:
    """`nas inspect FILE [--json]`: print what `file` describes (one JSON object with `as_json`); returns 0.

    `file` may also name a shipped search space (`densenet_small`), as a config's `encoding` may."""
    path = str(resolve_space(file, None, key="file")) if isinstance(file, str) and is_space_name(file) else str(file)
    fmt = load_yaml_mapping(path, "file").get("format")
    if fmt == ARCH_FORMAT:
        info = describe_architecture(path)
    elif fmt == SPACE_FORMAT:
        info = describe_space(path)
    else:
        raise UserError(f"{path}: format: must be {ARCH_FORMAT!r} or {SPACE_FORMAT!r}, got {shown(fmt)}")
    print(json.dumps(info) if as_json else format_text(info))
    return 0
