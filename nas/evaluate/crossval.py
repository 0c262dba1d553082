"""`nas train ARCH --config CONFIG --cv loco [--json] [--save DIR]`: an architecture through a dataset's folds.

`loco` is BBBC021's leave-one-compound-out (38 folds on the full set): for each compound, a fresh network of
the architecture (initialised from the seed, the same for every fold) is trained on the crops of all other
compounds for `fitness.epochs` (or `--epochs`) and scores the held-out compound's crops; the report gives each
fold's and the pooled treatment-level accuracy, the per-image accuracy and the 12x12 treatment confusion
matrix (`nas.evaluate.protocols`). `cell-line` is BBBC014's pair of folds (train on one cell line, test on the
other, both ways), scored at the well level.

Predictions are written as CSV to `--save DIR` when given, else to the current directory:
`<cv>_predictions.csv` (one row per crop or tile, with class probabilities) and `<cv>_treatments.csv` /
`<cv>_wells.csv` (one row per aggregated group), beside `<cv>_metrics.json` (the printed summary, with the
per-class accuracy, and under `settings` how the folds were trained: the architecture file and its size, the
config, epochs, batch size, optimizer, learning rate and schedule, augmentation and class weights as
resolved for the dataset, so that a figure is never read without them). The text output prints the same:
per fold, pooled, the confusion matrix with each class's accuracy, and the settings. Nothing is trained on
the test compound of a fold, and the network is rebuilt for every fold, so no weights leak between folds.
`crossval_command` takes `nas train`'s flags as typed parameters, so Python code calls it directly, without the
command line's parser.
"""

import json
import sys
from pathlib import Path

import numpy as np
from torch import nn

from nas.atomicfile import atomic_write_text
from nas.config import Config
from nas.data.folds import CV_PROTOCOLS, Fold, count_folds, iterate_folds
from nas.errors import UserError
from nas.evaluate.fit_check import check_fits
from nas.evaluate.protocols import CrossValReport, confusion_lines, cross_validate
from nas.evaluate.recipe import augmentation_for, recipe, weighting_for
from nas.evaluate.trainer import seeded_model, train_model
from nas.genome.architecture import Architecture
from nas.model.analytic_cost import analytic_cost


def check_protocol(cv: str, config: Config) -> None:
    """`--cv NAME` must be the protocol of the config's dataset."""
    wanted = CV_PROTOCOLS.get(cv)
    if wanted is None:
        raise UserError(f"--cv: unknown protocol {cv!r} (known: {', '.join(CV_PROTOCOLS)})")
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


def training_settings(
    arch: Architecture, config: Config, epochs: int | None, architecture: str | Path, config_path: str | Path | None
) -> dict:
    """How every fold's network was trained, as `run_protocol` trains it: the `settings` of the metrics file,
    with the architecture file and the config file (null when the config came from no file)."""
    fitness, dataset = config.fitness, config.dataset.name
    params, flops = analytic_cost(arch)
    lr = arch.genome.learning_rate
    return {
        "architecture": str(Path(architecture).resolve()),
        "config": str(Path(config_path).resolve()) if config_path else None,
        "params": params,
        "flops": flops,
        "input_size": arch.input_size,
        "blocks": [b.to_dict() for b in arch.genome.blocks],
        "epochs": epochs or fitness.epochs,
        "batch_size": fitness.batch_size,
        "optimizer": fitness.optimizer,
        "lr": fitness.lr if lr is None else lr,  # the architecture's own, when its file has one (as trained)
        "schedule": fitness.schedule,
        "weight_decay": fitness.weight_decay,
        "augmentation": augmentation_for(fitness, dataset),
        "class_weights": weighting_for(fitness, dataset),
        "precision": fitness.precision,
    }


def crossval_command(
    arch: Architecture,
    config: Config,
    *,
    architecture: str | Path,
    cv: str,
    config_path: str | Path | None = None,
    seed: int | None = None,
    epochs: int | None = None,
    save: str | Path | None = None,
    as_json: bool = False,
) -> int:
    """Run protocol `cv` for `nas train` on `arch` (loaded from the file `architecture`) and `config` (from
    `config_path`); print the summary (one JSON object with `as_json`), write the CSVs to `save` (else the
    current directory); returns 0."""
    check_protocol(cv, config)
    seed = config.seed if seed is None else seed
    report = run_protocol(arch, config, seed, epochs, str(architecture))
    folder = Path(save) if save else Path.cwd()
    files = report.write_csv(folder, cv)
    files["metrics"] = str(folder / f"{cv}_metrics.json")
    settings = training_settings(arch, config, epochs, architecture, config_path)
    summary = {"protocol": cv, "dataset": config.dataset.name, "seed": seed, **report.to_dict(),
               "settings": settings, "files": files}  # fmt: skip
    atomic_write_text(files["metrics"], json.dumps(summary, indent=1, allow_nan=False) + "\n")
    if as_json:
        print(json.dumps(summary, allow_nan=False))
    else:
        print_summary(summary)
    return 0


def print_summary(summary: dict) -> None:
    """A human-readable report: one line per fold, the pooled figures, the confusion matrix with each class's
    accuracy, how the folds were trained, and the files written."""
    level = summary["level"]
    out = sys.stdout
    out.write(f"{'fold':<28} {level + 's':>10} {'accuracy':>9} {'images':>7} {'img acc':>8}\n")
    for f in summary["folds"]:
        acc, img = number(f["accuracy"]), number(f["image_accuracy"])
        out.write(f"{f['name'][:28]:<28} {f['groups']:>10} {acc:>9} {f['images']:>7} {img:>8}\n")
    out.write(f"{level} accuracy {number(summary['accuracy'])} over {summary['groups']} {level}s; ")
    out.write(f"image accuracy {number(summary['image_accuracy'])} over {summary['images']} images\n\n")
    out.write("\n".join(confusion_lines(summary["class_names"], summary["confusion"], level)) + "\n\n")
    s = summary["settings"]
    epochs = f"{s['epochs']} epoch{'s' if s['epochs'] != 1 else ''}"
    out.write(f"trained: {s['architecture']} ({s['params']:,} params), {epochs}, batch {s['batch_size']}, "
              f"{s['optimizer']} lr {s['lr']:g} ({s['schedule']}), augmentation {s['augmentation']}, "
              f"class weights {s['class_weights']}, seed {summary['seed']}\n")  # fmt: skip
    for kind, path in summary["files"].items():
        out.write(f"{kind}: {path}\n")


def number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
