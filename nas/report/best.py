"""`best.png`: the best network of the run, drawn so that its two searched levels can be read off.

Top: the network end to end (input, stem, each block with its layers, growth rate and channels, the
transitions between blocks, the head). Below: one grid per block for the shortcut level. Rows are source nodes
(0 = the block input, t = the output of layer t), columns are targets (layers 1..L, then the block output).
The chain (node t-1 into target t) is always there and is drawn dark; evolved bits are blue when on and white
when off; cells that cannot be a link (a node feeding itself or an earlier layer) are grey.
"""

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from nas.genome import shortcuts
from nas.genome.architecture import Architecture
from nas.genome.genome import BlockGene
from nas.model.network import block_channels
from nas.report import style
from nas.report.context import ReportContext
from nas.report.pareto import human_count

NAME = "best.png"
NOT_A_LINK, OFF, ON, CHAIN = 0, 1, 2, 3
CELL_COLOURS = ListedColormap([style.NOT_A_LINK, style.SHORTCUT_OFF, style.SHORTCUT_ON, style.CHAIN])


def link_matrix(block: BlockGene) -> np.ndarray:
    """(L+1) x (L+1) codes: rows source nodes 0..L, columns targets 1..L+1 (DESIGN.md section 2)."""
    size = block.layers + 1
    grid = np.full((size, size), NOT_A_LINK, dtype=int)
    for target in range(1, size + 1):
        grid[target - 1, target - 1] = CHAIN
    for bit, (source, target) in zip(block.shortcuts, shortcuts.pairs(block.layers), strict=True):
        grid[source, target - 1] = ON if bit == "1" else OFF
    return grid


def draw_block(ax: Axes, index: int, block: BlockGene, channels: tuple[int, int]) -> None:
    """One block's shortcut grid with node labels and, when the cells are big enough, the bits written in."""
    grid = link_matrix(block)
    size = block.layers + 1
    ax.imshow(grid, cmap=CELL_COLOURS, vmin=0, vmax=3)
    ax.set_xticks(np.arange(size) - 0.5, minor=True)
    ax.set_yticks(np.arange(size) - 0.5, minor=True)
    ax.grid(which="minor", color="#9A9A9A", lw=1)
    ax.grid(which="major", visible=False)
    ax.tick_params(which="minor", length=0)
    ax.set_xticks(range(size), [f"L{t}" for t in range(1, size)] + ["out"], fontsize=tick_font(size))
    ax.set_yticks(range(size), ["in"] + [f"L{t}" for t in range(1, size)], fontsize=tick_font(size))
    ax.set_xlabel("target")
    ax.set_ylabel("source node")
    if size <= 9:
        for (row, col), code in np.ndenumerate(grid):
            if code in (ON, OFF):
                ax.text(
                    col,
                    row,
                    "1" if code == ON else "0",
                    ha="center",
                    va="center",
                    fontsize=12,
                    color="white" if code == ON else "#555555",
                )
    on, bits = block.shortcuts.count("1"), len(block.shortcuts)
    ax.set_title(
        f"block {index + 1}: {block.layers} layers, growth {block.growth_rate}\n"
        f"{channels[0]} \u2192 {channels[1]} channels, {on}/{bits} shortcuts on",
        fontsize=15,
    )


def tick_font(size: int) -> int:
    return 13 if size <= 8 else 11 if size <= 14 else 8


def stages(arch: Architecture) -> list[str]:
    """The network end to end, one box label per stage."""
    labels = [
        f"input\n{arch.in_channels}\u00d7{arch.input_size}\u00d7{arch.input_size}",
        f"stem\nconv 3\u00d73{'' if arch.stem_stride == 1 else f' /{arch.stem_stride}'}\n{arch.stem_channels} ch",
    ]
    channels = block_channels(arch)
    for i, (block, (c_in, c_out)) in enumerate(zip(arch.genome.blocks, channels, strict=True)):
        labels.append(f"block {i + 1}\n{block.layers} \u00d7 k={block.growth_rate}\n{c_in}\u2192{c_out} ch")
        if i < len(channels) - 1:
            labels.append(f"transition\n{c_out}\u2192{channels[i + 1][0]} ch\npool /2")
    labels.append(f"head\npool, linear\n\u2192 {arch.num_classes} classes")
    return labels


def draw_stages(ax: Axes, arch: Architecture) -> None:
    """Boxes left to right joined by arrows; blocks are highlighted since they are what was searched."""
    labels = stages(arch)
    ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_ylim(-1, 1)
    ax.axis("off")
    for i, label in enumerate(labels):
        searched = label.startswith("block")
        ax.text(
            i,
            0,
            label,
            ha="center",
            va="center",
            fontsize=13 if len(labels) <= 9 else 10,
            bbox={
                "boxstyle": "round,pad=0.5",
                "fc": "#DCEBF7" if searched else "#F4F4F4",
                "ec": style.SHORTCUT_ON if searched else "#8A8A8A",
                "lw": 1.5,
            },
        )
        if i:
            ax.annotate("", xy=(i - 0.36, 0), xytext=(i - 0.64, 0), arrowprops={"arrowstyle": "->", "lw": 1.5})


def legend(fig: Figure) -> None:
    handles = [
        Patch(fc=style.CHAIN, ec="#9A9A9A", label="chain (always on)"),
        Patch(fc=style.SHORTCUT_ON, ec="#9A9A9A", label="evolved shortcut: on"),
        Patch(fc=style.SHORTCUT_OFF, ec="#9A9A9A", label="evolved shortcut: off"),
        Patch(fc=style.NOT_A_LINK, ec="#9A9A9A", label="no link possible"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False)


def draw_best(ctx: ReportContext, folder: Path) -> Path:
    """Draw and save `best.png` into `folder` (a notice instead when no evaluation succeeded)."""
    fig = style.new_figure(NAME)
    if not ctx.snapshot.best_first:
        fig.suptitle(f"Best architecture: {ctx.title}")
        fig.text(0.5, 0.5, "no evaluation succeeded: there is no best architecture yet", ha="center", fontsize=18)
        return style.save_figure(fig, folder, NAME)
    best = ctx.snapshot.best_first[0]
    arch = ctx.snapshot.architecture(best)
    flops = f", {human_count(best.flops)} FLOPs" if best.flops is not None else ""
    fig.suptitle(
        f"Best architecture of {ctx.title}\nvalidation accuracy {best.fitness:.4f}, "
        f"{human_count(best.params or 0)} params{flops}, genome {best.key[:12]}"
    )
    blocks = arch.genome.blocks
    grid = fig.add_gridspec(2, len(blocks), height_ratios=[1, 3.4])
    draw_stages(fig.add_subplot(grid[0, :]), arch)
    for i, (block, channels) in enumerate(zip(blocks, block_channels(arch), strict=True)):
        draw_block(fig.add_subplot(grid[1, i]), i, block, channels)
    legend(fig)
    return style.save_figure(fig, folder, NAME)
