"""Cross-validation protocols: the fold loop, the aggregation and the metrics, one implementation for both arms.

`cross_validate(folds, model_factory, train)` runs any model family through the folds of a dataset
(`nas.data.folds`): for each fold it builds a fresh model with `model_factory(fold)`, trains it with
`train(model, fold)`, which returns the softmax probabilities of `fold.data.x_test`, and scores them. The
searched networks (`nas train --cv`) pass `build_model` and `train_model`; the transfer arm passes its
pretrained backbones and its fine-tuning; the folds, the aggregation (`nas.data.aggregate`) and these metrics
are the same code, so the two columns of a comparison are comparable by construction.

Metrics, as Kensert et al. (2019) report them:
- `accuracy`: at the protocol's group level (BBBC021 treatments, BBBC014 wells), pooled over all folds: the
  members' probabilities are reduced level by level (`fold.data.group_reduce`: median over crops and fields of
  a well, then over replicate wells, for BBBC021) and the argmax is the group's prediction;
- `image_accuracy`: per network input (a crop or tile), pooled over all folds;
- `confusion`: group-level counts, rows the true class, columns the predicted class;
- `class_accuracy`: per true class, its groups, how many were predicted right and that fraction (the confusion
  matrix's diagonal over its row sums; null for a class with no group);
- per fold: both accuracies and the numbers of images and groups.
`confusion_lines` renders the last two as text, for the commands that print them.
Predictions go to two CSV files: one row per image (fold, its test-table columns, true and predicted class,
the class probabilities) and one row per group (its describing columns, image count, true and predicted
class, the aggregated probabilities).
"""

import csv
import io
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from tqdm import tqdm

from nas.atomicfile import atomic_write_text
from nas.data.aggregate import aggregate_groups
from nas.data.folds import Fold

log = logging.getLogger(__name__)

ModelFactory = Callable[[Fold], nn.Module]
TrainFunction = Callable[[nn.Module, Fold], np.ndarray]


@dataclass
class FoldScore:
    """One fold's figures."""

    name: str
    images: int
    groups: int
    accuracy: float
    image_accuracy: float
    seconds: float


@dataclass
class CrossValReport:
    """Every fold's figures, the pooled metrics, and the prediction rows for the CSV files."""

    level: str
    class_names: list[str]
    folds: list[FoldScore] = field(default_factory=list)
    image_rows: list[dict[str, Any]] = field(default_factory=list)
    group_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return mean_or_nan([row["correct"] for row in self.group_rows])

    @property
    def image_accuracy(self) -> float:
        return mean_or_nan([row["correct"] for row in self.image_rows])

    def confusion(self) -> np.ndarray:
        """Group-level confusion counts: rows true class, columns predicted class."""
        out = np.zeros((len(self.class_names), len(self.class_names)), dtype=np.int64)
        index = {name: i for i, name in enumerate(self.class_names)}
        for row in self.group_rows:
            out[index[row["true"]], index[row["predicted"]]] += 1
        return out

    def class_accuracy(self) -> list[dict[str, Any]]:
        """Per true class: `class`, `groups`, `correct` and `accuracy` (None for a class without a group)."""
        return class_accuracy(self.class_names, self.confusion())

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe summary (no per-image rows; NaN becomes None)."""
        return {
            "level": self.level,
            "accuracy": finite(self.accuracy),
            "image_accuracy": finite(self.image_accuracy),
            "groups": len(self.group_rows),
            "images": len(self.image_rows),
            "folds": [{k: finite(v) for k, v in vars(f).items()} for f in self.folds],
            "class_names": list(self.class_names),
            "confusion": self.confusion().tolist(),
            "class_accuracy": self.class_accuracy(),
        }

    def write_csv(self, folder: str | Path, prefix: str) -> dict[str, str]:
        """`<prefix>_predictions.csv` (per image) and `<prefix>_<level>s.csv` (per group), written atomically."""
        folder = Path(folder)
        paths = {
            "predictions": folder / f"{prefix}_predictions.csv",
            self.level: folder / f"{prefix}_{self.level}s.csv",
        }
        atomic_write_text(paths["predictions"], csv_text(self.image_rows))
        atomic_write_text(paths[self.level], csv_text(self.group_rows))
        return {k: str(v) for k, v in paths.items()}


def finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def class_accuracy(class_names: list[str], confusion: np.ndarray | list[list[int]]) -> list[dict[str, Any]]:
    """Per true class (a row of `confusion`): its group count, the correct ones and their fraction."""
    counts = np.asarray(confusion, dtype=np.int64).reshape(len(class_names), len(class_names))
    out = []
    for i, name in enumerate(class_names):
        groups, correct = int(counts[i].sum()), int(counts[i, i])
        out.append({"class": name, "groups": groups, "correct": correct,
                    "accuracy": correct / groups if groups else None})  # fmt: skip
    return out


def confusion_lines(class_names: list[str], confusion: np.ndarray | list[list[int]], level: str) -> list[str]:
    """The confusion matrix and the per-class accuracy as aligned text, one line a class.

    Columns are numbered (class names of a dozen words would make a matrix wider than any terminal); each row
    gives its number and name, then its counts, then the class's correct groups, its groups and accuracy.
    """
    counts = np.asarray(confusion, dtype=np.int64).reshape(len(class_names), len(class_names))
    n = len(class_names)
    number = len(str(n))
    name_width = min(max((len(c) for c in class_names), default=5), 32)
    cell = max(number, len(str(int(counts.max()))) if counts.size else 1) + 1
    label = number + 1 + name_width
    rows = class_accuracy(class_names, counts)
    lines = [f"{level} confusion matrix (rows: true class, columns: predicted class, by number) "
             f"and accuracy per true class"]  # fmt: skip
    head = "".join(f"{j:>{cell}}" for j in range(1, n + 1))
    lines.append(f"{'':<{label}}{head}  {level + 's':>10} {'correct':>8} {'accuracy':>9}")
    for i, (name, row) in enumerate(zip(class_names, rows, strict=True), start=1):
        cells = "".join(f"{int(v):>{cell}}" for v in counts[i - 1])
        acc = "n/a" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        lines.append(f"{i:>{number}} {name[:name_width]:<{name_width}}{cells}  {row['groups']:>10} "
                     f"{row['correct']:>8} {acc:>9}")  # fmt: skip
    return lines


def mean_or_nan(values: list[bool]) -> float:
    return float(np.mean(values)) if values else float("nan")


def csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def probability_columns(class_names: list[str], probs: np.ndarray) -> dict[str, float]:
    return {f"p_{name}": round(float(p), 6) for name, p in zip(class_names, probs, strict=True)}


def plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, for CSV and JSON."""
    return value.item() if isinstance(value, np.generic) else value


def score_fold(fold: Fold, probs: np.ndarray) -> tuple[list[dict], list[dict]]:
    """(image rows, group rows) of one fold's test probabilities."""
    data, names = fold.data, fold.data.class_names
    probs = np.asarray(probs, dtype=np.float64)
    if data.y_test is None or data.test_groups is None:
        raise ValueError(f"fold {fold.name} has no test split with groups")
    if probs.shape != (len(data.y_test), len(names)):
        raise ValueError(
            f"fold {fold.name}: test probabilities of shape {probs.shape}, expected ({len(data.y_test)}, {len(names)})"
        )
    predicted = probs.argmax(axis=1)
    image_rows = []
    for i, (y, p) in enumerate(zip(data.y_test, predicted, strict=True)):
        row = {"fold": fold.name, **{k: plain(v[i]) for k, v in fold.test_table.items()}}
        row.update(true=names[y], predicted=names[p], correct=bool(y == p), **probability_columns(names, probs[i]))
        image_rows.append(row)
    groups = np.asarray(data.test_groups).reshape(len(probs), -1)
    ids, group_probs, group_labels = aggregate_groups(probs, data.y_test, groups, data.group_reduce)
    group_rows = []
    for gid, p, y in zip(ids, group_probs, group_labels, strict=True):
        members = np.flatnonzero(groups[:, -1] == gid)
        row = {"fold": fold.name, **{c: plain(fold.test_table[c][members[0]]) for c in fold.group_columns}}
        guess = int(np.argmax(p))
        row.update(images=len(members), true=names[y], predicted=names[guess], correct=bool(y == guess))
        row.update(probability_columns(names, p))
        group_rows.append(row)
    return image_rows, group_rows


def cross_validate(
    folds: Iterable[Fold],
    model_factory: ModelFactory,
    train: TrainFunction,
    *,
    total: int | None = None,
    on_fold: Callable[[FoldScore], None] | None = None,
) -> CrossValReport:
    """Train and score a fresh model on every fold; `total` (the number of folds) only sizes the progress bar."""
    report: CrossValReport | None = None
    bar = tqdm(folds, total=total, desc="folds", unit="fold", file=sys.stderr, disable=None)
    for fold in bar:
        start = time.perf_counter()
        probs = train(model_factory(fold), fold)
        image_rows, group_rows = score_fold(fold, probs)
        if report is None:
            report = CrossValReport(fold.level, list(fold.data.class_names))
        report.image_rows += image_rows
        report.group_rows += group_rows
        score = FoldScore(
            name=fold.name,
            images=len(image_rows),
            groups=len(group_rows),
            accuracy=mean_or_nan([r["correct"] for r in group_rows]),
            image_accuracy=mean_or_nan([r["correct"] for r in image_rows]),
            seconds=round(time.perf_counter() - start, 3),
        )
        report.folds.append(score)
        log.info("fold %s: %s accuracy %.3f (%d), image accuracy %.3f", score.name, fold.level, score.accuracy,
                 score.groups, score.image_accuracy)  # fmt: skip
        if on_fold is not None:
            on_fold(score)
    bar.close()
    if report is None:
        raise ValueError("no folds to cross-validate")
    return report
