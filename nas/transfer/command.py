"""`nas baseline CONFIG [--run-dir DIR] [--epochs N] [--json]`: the pretrained-transfer arm, start to end.

Order matters for the user's time: the config and every weights file are checked first (seconds), then the
dataset is loaded once for all backbones, then each backbone runs the dataset's protocol in turn and its
`metrics.json` and `predictions.csv` are written the moment it finishes, so an interrupted run keeps the
backbones already done. Where the protocol trains one network on the whole training split (every dataset but
BBBC021 and BBBC014, whose folds train one network per fold), that network is saved beside them as `model.pt2`
and `preprocess.json` (`nas.transfer.model_files`), so `nas predict RUN_DIR/baseline/<model> IMAGES...` runs it.
`baseline/config.yaml` is the config as run: the file's, with `--epochs` applied. The default run directory is
`runs/<config name>-baseline`; pointing `--run-dir` at a search's run directory puts the arm beside the search
for `nas report`.

`baseline_command` takes the flags as typed parameters (`nas.cli` passes the parsed ones), so Python code calls
it directly, without the command line's parser.
"""

import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.atomicfile import atomic_write_text
from nas.config import Config, load_config
from nas.data.dataset import ImageData
from nas.errors import UserError
from nas.evaluate.threads import use_given_cores
from nas.transfer.arm import load_plain_data, run_arm
from nas.transfer.model_files import PROGRAM, save_model_files
from nas.transfer.plan import ModelRun, plan_runs
from nas.transfer.results import baseline_dir, finite, write_metrics, write_rows

log = logging.getLogger(__name__)


def default_run_dir(config: Config) -> Path:
    return Path("runs") / f"{config.name}-baseline"


def checked_plan(config_path: str | Path, overrides: Sequence[str] | None = None) -> tuple[Config, list]:
    """The config (with `--set` overrides) and its runs, every weights file verified; errors name the config
    file too."""
    config = load_config(config_path, overrides)
    try:
        return config, plan_runs(config)
    except UserError as exc:
        raise UserError(f"{config_path}: {exc}") from None


def summary_line(metrics: dict[str, Any]) -> str:
    accuracy = metrics["accuracy"]
    shown = f"{accuracy:.2%}" if accuracy is not None else "n/a"
    paper = metrics.get("paper_accuracy")
    versus = f" (paper {paper:.1%})" if paper is not None else ""
    return f"{metrics['label']:<34} {metrics['metric']} {shown}{versus}  params {metrics['params']:,}"


def as_run(config: Config, epochs: int | None) -> Config:
    """The config with the command line's overrides applied (`--epochs` is `baseline.epochs`): what
    `baseline/config.yaml` records, so that the file says how the arm was trained, not how the config
    file would have trained it."""
    if epochs is None or config.baseline is None:
        return config
    return dataclasses.replace(config, baseline=dataclasses.replace(config.baseline, epochs=epochs))


def run_backbone(
    config: Config, run: ModelRun, folder: Path, *, epochs: int | None, progress: bool, data: ImageData | None
) -> dict[str, Any]:
    """Fine-tune one backbone and write its files: the CSVs, the model folder `nas predict` runs (train-test
    protocol), then `metrics.json`; returns the metrics. The network is released on return, before the next
    backbone is built."""
    log.info("transfer arm: %s (%s) on %s", run.backbone.title, run.init, config.dataset.name)
    metrics, tables, network = run_arm(config, run, epochs=epochs, progress=progress, data=data)
    for stem, rows in tables.items():
        write_rows(folder, run.model, stem, rows)
    metrics["model_file"] = None
    if network is not None and data is not None:
        saved = save_model_files(folder, network, config, data, metrics)
        metrics["model_file"] = PROGRAM
        log.info("saved the fine-tuned network to %s (run it with: nas predict %s IMAGES...)", saved, saved)
    log.info("wrote %s", write_metrics(folder, metrics))
    return finite(metrics)


def baseline_command(
    config_path: str | Path,
    *,
    overrides: Sequence[str] | None = None,
    run_dir: str | Path | None = None,
    epochs: int | None = None,
    as_json: bool = False,
) -> int:
    """`nas baseline CONFIG [--run-dir DIR] [--epochs N] [--json]`: run every backbone, print the results;
    returns 0."""
    config, runs = checked_plan(config_path, overrides)
    config = as_run(config, epochs)
    use_given_cores(config.resources.cpus_per_trial)
    folder = Path(run_dir) if run_dir else default_run_dir(config)
    atomic_write_text(baseline_dir(folder) / "config.yaml", config.to_yaml())
    progress = sys.stderr.isatty()
    data = load_plain_data(config)
    results = [run_backbone(config, run, folder, epochs=epochs, progress=progress, data=data) for run in runs]
    if as_json:
        summary = {"run_dir": str(folder), "dataset": config.dataset.name, "results": results}
        print(json.dumps(summary, allow_nan=False))
    else:
        print("\n".join(summary_line(m) for m in results))
    return 0
