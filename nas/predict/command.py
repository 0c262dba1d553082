"""`nas predict MODEL_DIR INPUT... [--out FILE.csv] [--json] [--batch-size N] [--format F]`.

Runs a model folder from `nas train --save` or `nas export` (`model.pt2` by default, an earlier `model.ts`
when there is no `model.pt2`, `model.onnx` with `--format onnx` or when it is the only file) on raw inputs
(`nas.predict.inputs`). The model file normalises inside, so nothing here but decoding and resizing touches the
pixels: a prediction is what the model file gives for those pixels, and on a config's test split the accuracy
is the one `nas train` printed.

Output: one CSV row per image (`path`, what identifies a test image of a config's split (`Inputs.columns`: for
BBBC021 compound, concentration, plate, well, replicate, image, crop), `label` when known, `predicted`, then
`p_<class>` for every class in the model's output order) to `--out`, else to stdout. `--out` is checked before
any work. When every image has a label, accuracy and the confusion matrix (rows: true class, columns:
predicted) are printed (to stderr when the CSV goes to stdout); on a BBBC021 or BBBC014 config they are those of
the protocol (treatments, wells: the trainer's aggregation), beside the per-image accuracy. `--json`
prints exactly one JSON object on stdout instead (with the predictions when there is no `--out`). A progress bar
shows on stderr, when it is a terminal, for inputs longer than one batch.

`predict_command` takes the flags as typed parameters (`nas.cli` passes the parsed ones), so Python code calls
it directly, without the command line's parser.
"""

import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.atomicfile import atomic_write_text
from nas.data.aggregate import aggregate
from nas.errors import UserError
from nas.predict.files import check_out_path
from nas.predict.inputs import Inputs, Item, gather
from nas.predict.model_file import ModelFile, load_model

# The level accuracy is counted at, singular and plural, for the printed summary.
LEVELS = {"image": ("image", "images"), "treatments": ("treatment", "treatments"), "wells": ("well", "wells")}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def batched(items: list[Item], size: int) -> list[list[Item]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def predict_items(model: ModelFile, items: list[Item], batch_size: int) -> np.ndarray:
    """Class probabilities (N, classes) of `items`, a batch at a time, with a progress bar on long inputs."""
    from tqdm import tqdm

    pre = model.preprocess
    want = (pre.in_channels, pre.input_size, pre.input_size)
    out = []
    bar = tqdm(total=len(items), desc="predict", unit="image", file=sys.stderr, leave=False,
               disable=not sys.stderr.isatty() or len(items) <= batch_size)  # fmt: skip
    with bar:
        for batch in batched(items, batch_size):
            x = np.stack([item.load() for item in batch]).astype(pre.input_dtype, copy=False)
            if x.shape[1:] != want:
                raise UserError(f"{batch[0].name}: shape {x.shape[1:]}, the model takes {want}")
            out.append(softmax(model.logits(x)))
            bar.update(len(batch))
    return np.concatenate(out) if out else np.zeros((0, len(pre.class_names)), dtype=np.float32)


def confusion(pred: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs: rows are the true class, columns the predicted one."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, pred), 1)
    return matrix


def scores(probs: np.ndarray, inputs: Inputs, classes: int) -> dict[str, Any] | None:
    """Accuracy and confusion matrix when every image has a label (at the protocol's level when grouped)."""
    if not inputs.items or any(item.label is None for item in inputs.items):
        return None
    labels = np.array([item.label for item in inputs.items], dtype=np.int64)
    per_image = float(np.mean(np.argmax(probs, axis=1) == labels))
    out: dict[str, Any] = {"level": "image", "count": len(labels), "image_accuracy": per_image}
    if inputs.groups is not None:
        probs, labels = aggregate(probs, labels, inputs.groups, inputs.group_reduce)
        out.update(level=inputs.protocol or "group", count=len(labels))
    pred = np.argmax(probs, axis=1)
    out["accuracy"] = float(np.mean(pred == labels))
    out["confusion_matrix"] = confusion(pred, labels, classes).tolist()
    return out


def csv_text(inputs: Inputs, probs: np.ndarray, class_names: list[str]) -> str:
    labelled = all(item.label is not None for item in inputs.items)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["path", *inputs.columns, *(["label"] if labelled else []), "predicted", *(f"p_{c}" for c in class_names)]
    writer.writerow(header)
    for item, p in zip(inputs.items, probs, strict=True):
        label = [class_names[item.label]] if labelled and item.label is not None else []
        meta = [item.meta.get(c, "") for c in inputs.columns]
        writer.writerow([item.name, *meta, *label, class_names[int(np.argmax(p))], *(f"{v:.6g}" for v in p)])
    return buffer.getvalue()


def matrix_text(matrix: list[list[int]], names: list[str]) -> str:
    """The confusion matrix as an aligned table, true classes down, predicted across: the first column as wide as
    its corner label and the longest class name, each other column as wide as its class name and its counts,
    right-aligned, so every header label ends where its column's counts end."""
    corner = "true \\ predicted"
    first = max(len(corner), *(len(n) for n in names))
    widths = [max(len(n), *(len(str(row[j])) for row in matrix)) for j, n in enumerate(names)]
    lines = [" ".join([corner.ljust(first), *(n.rjust(w) for n, w in zip(names, widths, strict=True))])]
    for name, row in zip(names, matrix, strict=True):
        lines.append(" ".join([name.ljust(first), *(str(v).rjust(w) for v, w in zip(row, widths, strict=True))]))
    return "\n".join(lines)


def counted(count: int, level: str) -> str:
    """`8 treatments`, `1 treatment`, `359 images`."""
    one, many = LEVELS.get(level, (level, level if level.endswith("s") else f"{level}s"))
    return f"{count} {one if count == 1 else many}"


def summary_text(model: ModelFile, n: int, score: dict[str, Any] | None) -> str:
    lines = [f"predicted {counted(n, 'image')} with {model.path} ({model.format})"]
    if score is not None:
        lines.append(f"accuracy {score['accuracy']:.4f} over {counted(score['count'], score['level'])}")
        if score["level"] != "image":
            lines.append(f"image-level accuracy {score['image_accuracy']:.4f}")
        lines.append(matrix_text(score["confusion_matrix"], model.preprocess.class_names))
    return "\n".join(lines)


def prediction(item: Item, p: np.ndarray) -> dict[str, Any]:
    """One image's entry in `--json`: its name, what identifies it, its label, the predicted class, the
    probabilities."""
    return {"path": item.name, **item.meta, "label": item.label, "predicted": int(np.argmax(p)),
            "probabilities": p.tolist()}  # fmt: skip


def predict_command(
    model_dir: str | Path,
    inputs: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    as_json: bool = False,
    batch_size: int = 256,
    model_format: str = "auto",
) -> int:
    """`nas predict MODEL_DIR INPUT...`: predict, write or print the CSV and the scores; returns 0."""
    if out:
        check_out_path(str(out))
    model = load_model(model_dir, model_format)
    pre = model.preprocess
    gathered = gather([str(item) for item in inputs], pre)
    probs = predict_items(model, gathered.items, batch_size)
    score = scores(probs, gathered, len(pre.class_names))
    table = csv_text(gathered, probs, pre.class_names)
    if out:
        atomic_write_text(Path(out), table)
    if as_json:
        result: dict[str, Any] = {"model": str(model.path), "format": model.format, "images": len(gathered.items),
                                  "class_names": pre.class_names, **(score or {"accuracy": None})}  # fmt: skip
        if out:
            result["out"] = str(out)
        else:
            result["predictions"] = [prediction(item, p) for item, p in zip(gathered.items, probs, strict=True)]
        print(json.dumps(result, allow_nan=False))
    elif out:
        print(summary_text(model, len(gathered.items), score))
    else:
        sys.stdout.write(table)
        sys.stderr.write(summary_text(model, len(gathered.items), score) + "\n")
    sys.stdout.flush()
    return 0
