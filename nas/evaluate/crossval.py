"""`nas train ARCH --config CONFIG --cv loco [--json] [--save DIR]`: an architecture through a dataset's folds.

`loco` is BBBC021's leave-one-compound-out (38 folds on the full set): for each compound, a fresh network of
the architecture (initialised from the seed, the same for every fold) is trained on the crops of all other
compounds for `fitness.epochs` (or `--epochs`) and scores the held-out compound's crops; the report gives each
fold's and the pooled treatment-level accuracy, the per-image accuracy and the 12x12 treatment confusion
matrix (`nas.evaluate.protocols`). `cell-line` is BBBC014's pair of folds (train on one cell line, test on the
other, both ways), scored at the well level.

Predictions are written as CSV to `--save DIR` when given, else to the current directory:
`<cv>_predictions.csv` (one row per crop or tile, with class probabilities) and `<cv>_treatments.csv` /
`<cv>_wells.csv` (one row per aggregated group), beside `<cv>_metrics.json` (the printed summary). Nothing
is trained on the test compound of a fold, and the network is rebuilt for every fold, so no weights leak
between folds.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from torch import nn

from nas.atomicfile import atomic_write_text
from nas.config import Config
from nas.data.folds import Fold, count_folds, iterate_folds
from nas.errors import UserError
from nas.evaluate.protocols import CrossValReport, cross_validate
from nas.evaluate.recipe import recipe
from nas.evaluate.train_command import check_fits
from nas.evaluate.trainer import seeded_model, train_model
from nas.genome.architecture import Architecture

PROTOCOLS = {"loco": "bbbc021", "cell-line": "bbbc014"}


def check_protocol(cv: str, config: Config) -> None:
    """`--cv NAME` must be the protocol of the config's dataset."""
    wanted = PROTOCOLS.get(cv)
    if wanted is None:
        raise UserError(f"--cv: unknown protocol {cv!r} (known: {', '.join(PROTOCOLS)})")
    if config.dataset.name != wanted:
        raise UserError(f"--cv {cv} needs dataset.name {wanted}, the config has {config.dataset.name!r}")


def run_protocol(arch: Architecture, config: Config, seed: int, epochs: int | None, source: str) -> CrossValReport:
    """Every fold of the config's dataset with a fresh `arch` network trained by `train_model`."""

    def model_factory(fold: Fold) -> nn.Module:
        check_fits(arch, fold.data, source)
        return seeded_model(arch, seed)

    def train(model: nn.Module, fold: Fold) -> np.ndarray:
        report = train_model(model, fold.data, config.fitness, seed=seed, epochs=epochs,
                             lr=arch.genome.learning_rate, full=True, evaluate=("test",), keep_probs=True,
                             **recipe(config.fitness, config.dataset.name, fold.data, full=True))  # fmt: skip
        return report.probs["test"]

    folds = iterate_folds(config.dataset, seed)
    return cross_validate(folds, model_factory, train, total=count_folds(config.dataset))


def crossval_command(args: argparse.Namespace, arch: Architecture, config: Config) -> int:
    """Run `--cv` for `nas train`; print the summary (one JSON object with `--json`), write the CSVs."""
    check_protocol(args.cv, config)
    seed = config.seed if getattr(args, "seed", None) is None else args.seed
    report = run_protocol(arch, config, seed, getattr(args, "epochs", None), str(args.architecture))
    folder = Path(args.save) if getattr(args, "save", None) else Path.cwd()
    files = report.write_csv(folder, args.cv)
    files["metrics"] = str(folder / f"{args.cv}_metrics.json")
    summary = {"protocol": args.cv, "dataset": config.dataset.name, "seed": seed, **report.to_dict(), "files": files}
    atomic_write_text(files["metrics"], json.dumps(summary, indent=1, allow_nan=False) + "\n")
    if getattr(args, "json", False):
        print(json.dumps(summary, allow_nan=False))
    else:
        print_summary(summary)
    return 0


def print_summary(summary: dict) -> None:
    """A human-readable table: one line per fold, then the pooled figures."""
    level = summary["level"]
    out = sys.stdout
    out.write(f"{'fold':<28} {level + 's':>10} {'accuracy':>9} {'images':>7} {'img acc':>8}\n")
    for f in summary["folds"]:
        acc, img = number(f["accuracy"]), number(f["image_accuracy"])
        out.write(f"{f['name'][:28]:<28} {f['groups']:>10} {acc:>9} {f['images']:>7} {img:>8}\n")
    out.write(f"{level} accuracy {number(summary['accuracy'])} over {summary['groups']} {level}s; ")
    out.write(f"image accuracy {number(summary['image_accuracy'])} over {summary['images']} images\n")
    for kind, path in summary["files"].items():
        out.write(f"{kind}: {path}\n")


def number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
