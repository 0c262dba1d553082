"""The look every report figure shares: Agg backend, fixed pixel sizes, readable fonts, one palette.

matplotlib is switched to the Agg backend before pyplot is imported, so reports render on a headless GPU node
or in CI without a display. Each figure has a fixed size in pixels (`SIZES`) and is saved without tight
cropping, so a report always has the same dimensions and a reader (or a test) can rely on them. Fonts are
sized for a slide or a wiki page at that resolution. Every figure is built inside `figure_style()` so that
the user's own matplotlib settings are neither used nor changed.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.figure import Figure  # noqa: E402

DPI = 100
SIZES = {"progress.png": (1600, 900), "pareto.png": (1600, 900), "best.png": (1800, 1000)}
SOME_RUNS_SIZES = {"hypervolume.png": (1600, 900)}  # figures only some runs get (several objectives)

# Colour-blind-safe (Okabe-Ito) roles, the same in every figure.
BEST = "#D55E00"
MEAN = "#0072B2"
POINTS = "#7F7F7F"
FAILED = "#CC3311"
FRONT = "#009E73"
CHAIN = "#3B3B3B"
SHORTCUT_ON = "#0072B2"
SHORTCUT_OFF = "#FFFFFF"
NOT_A_LINK = "#EDEDED"

RC = {
    "font.size": 14,
    "axes.titlesize": 17,
    "axes.labelsize": 15,
    "xtick.labelsize": 13,
    "ytick.labelsize": 13,
    "legend.fontsize": 13,
    "figure.titlesize": 20,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
}


@contextmanager
def figure_style() -> Iterator[None]:
    """The report's rcParams, applied only while its figures are drawn."""
    with matplotlib.rc_context(RC):
        yield


def new_figure(name: str) -> Figure:
    """A figure of the fixed pixel size registered for output file `name`, with constrained layout."""
    width, height = {**SIZES, **SOME_RUNS_SIZES}[name]
    return plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")


def save_figure(fig: Figure, folder: Path, name: str) -> Path:
    """Save `fig` as `folder/name` at exactly its registered pixel size, and free it."""
    path = folder / name
    try:
        fig.savefig(path, dpi=DPI, format="png")
    finally:
        plt.close(fig)
    return path
