"""The transfer arm's files in a run directory, and the paper's figures the report sets beside them.

Layout: `RUN_DIR/baseline/config.yaml` (the resolved config, as run: kept apart from a search's own
`RUN_DIR/config.yaml`, so an arm can run inside a search's directory without touching what `nas resume`
checks) and, per backbone, `RUN_DIR/baseline/<model>/metrics.json` and `predictions.csv` (one row per test image),
plus `treatments.csv` (BBBC021) or `wells.csv` (BBBC014) with one row per aggregated group, all written
atomically; every CSV row leads with `arm`, `model` and `init`. Where the protocol trains one network on the whole
training split, `model.pt2` and `preprocess.json` beside them are that network for `nas predict`
(`nas.transfer.model_files`). A rerun of the same backbone replaces its files.

`metrics.json` (format `nas-baseline/1`) holds what a side-by-side table needs: `arm` ("transfer"), `model`,
`title`, `init` ("pretrained" or "from-scratch"), `label` (e.g. "ResNet50 (from-scratch)"), `params`,
`accuracy` (the protocol's headline figure), `metric`, `protocol`, `dataset`, `folds` (per-fold figures, empty
without folds), `paper_accuracy` (Kensert et al.'s figure for this dataset and backbone, or null) and the
recipe (epochs, lr, batch size, input size, seed), and `model_file` ("model.pt2", or null where folds leave no
single network). `nas report` reads them through `load_baseline_results`.
"""

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.atomicfile import atomic_write_text
from nas.errors import UserError

FORMAT = "nas-baseline/1"
ARM = "transfer"
BASELINE_DIR = "baseline"
METRICS_FILE = "metrics.json"

# Kensert, Harrison and Spjuth, SLAS Discovery 24(4), 2019: BBBC021, leave-one-compound-out, accuracy over
# the 103 treatments (compound, concentration) after median aggregation. Keyed by dataset, then backbone.
PAPER_ACCURACY: dict[str, dict[str, float]] = {
    "bbbc021": {"resnet50": 0.971, "inception_v3": 0.971, "inception_resnet_v2": 0.951},
}
PAPER = "Kensert et al. 2019"


def paper_accuracy(dataset: str, model: str) -> float | None:
    """The paper's figure for `model` on `dataset` at its protocol, or None where it reports none."""
    return PAPER_ACCURACY.get(dataset, {}).get(model)


def baseline_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / BASELINE_DIR


def model_dir(run_dir: str | Path, model: str) -> Path:
    return baseline_dir(run_dir) / model


def finite(value: Any) -> Any:
    """JSON has no NaN: an undefined figure (e.g. a fold with nothing to score) is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def write_metrics(run_dir: str | Path, metrics: dict[str, Any]) -> Path:
    """Write `baseline/<model>/metrics.json` atomically; returns its path."""
    path = model_dir(run_dir, metrics["model"]) / METRICS_FILE
    atomic_write_text(path, json.dumps(finite({"format": FORMAT, **metrics}), indent=2, allow_nan=False) + "\n")
    return path


def write_rows(run_dir: str | Path, model: str, stem: str, rows: Sequence[dict[str, Any]]) -> Path:
    """Write `baseline/<model>/<stem>.csv` atomically (`predictions`, and `treatments` or `wells` where a
    protocol aggregates), columns in the order of the first row."""
    path = model_dir(run_dir, model) / f"{stem}.csv"
    buffer = io.StringIO()
    columns = list(rows[0]) if rows else ["arm", "model", "init"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
    return path


def read_metrics(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable metrics file ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: format: must be {FORMAT!r}")
    return data


def load_baseline_results(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every transfer result under `RUN_DIR/baseline/`, one dict per backbone (the `metrics.json` contents),
    sorted by model name; an empty list when the arm never ran there. For `nas report`'s side-by-side table:
    the keys `arm`, `label`, `init`, `params`, `accuracy`, `metric`, `dataset` and `paper_accuracy` are always
    present."""
    root = baseline_dir(run_dir)
    if not root.is_dir():
        return []
    return [read_metrics(p) for p in sorted(root.glob(f"*/{METRICS_FILE}"))]
