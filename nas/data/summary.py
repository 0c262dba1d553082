"""`nas data summary CONFIG [--json]`: what a dataset config resolves to, before anything is trained.

One object, whatever the kind, with the keys `dataset`, `images`, `treatments`, `compounds`, `classes` and
`folds` (null where a kind has no such notion), plus kind-specific extras:

- `bbbc021`: counted from the two metadata CSVs: images are protocol fields (each 3 TIFFs, 4 crops), on the
  real metadata 1,208 fields, 103 treatments, 38 compounds, 12 MoA classes, 38 leave-one-compound-out folds.
  Then the images themselves: every channel file preprocessing reads (the protocol fields' and the DMSO
  fields' of their plates, 7,152 on the real set) is looked for under `dataset.root`, without reading a pixel:
  `image_files`, `image_files_present`, `image_files_missing`, `first_missing_file`, and `cache` (the
  preprocessed crops' cache entry when it exists: then no image is read again, and missing ones do not
  matter). Missing images with no cache entry are what `nas search` would stop on, so the summary is printed
  and the command then exits 2 with one line naming the count and the first missing file;
- `bbbc014`: from the plate layout (and, when `dataset.root` holds the BMPs, their names are checked, no pixel
  read): 64 images of 64 wells (`treatments` are wells), 1 compound (TNF-alpha), 2 classes, 2 folds;
- any other kind: the dataset is loaded (`nas.data.loading.load_dataset`, cached after the first time) and
  the images of each split and the classes are reported.

The text output is for reading: one aligned line a key, numbers with thousands separators, mappings as
`name count` pairs (long ones a line each), and the keys a kind has no notion of left out (`--json` keeps them,
as null). `summary_command` takes the config path and `--json` as typed parameters (`nas.cli` passes the parsed
ones), so Python code calls it directly, without the command line's parser.
"""

import json
import sys
import textwrap
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.config import DatasetConfig, load_config
from nas.errors import UserError

SUMMARY_KEYS = ("dataset", "images", "treatments", "compounds", "classes", "folds")
IMAGE_KEYS = ("image_root", "image_files", "image_files_present", "image_files_missing", "first_missing_file", "cache")
LABEL_WIDTH = 16
WIDTH = 100
INLINE_ITEMS = 4  # a mapping of more entries than this gets a line per entry


def bbbc021_images(cfg: DatasetConfig, table: Any) -> dict[str, Any]:
    """The image files preprocessing needs, counted under `dataset.root` (no pixel read), and the cache entry
    that makes them unnecessary when it exists."""
    from nas.data.bbbc021_preprocess import crops_entry, missing_files, needed_fields

    fields = needed_fields(table)
    needed = 3 * len(fields)
    if cfg.root is None:
        missing, root, cache = needed, None, None
        first = None
    else:
        root = Path(cfg.root)
        entry = crops_entry(cfg, table)
        cache = str(entry) if entry.is_file() else None
        absent = missing_files(root, fields)
        missing, first = len(absent), (absent[0] if absent else None)
    return {
        "image_root": None if root is None else str(root),
        "image_files": needed,
        "image_files_present": needed - missing,
        "image_files_missing": missing,
        "first_missing_file": first,
        "cache": cache,
    }


def bbbc021_problem(summary: dict[str, Any]) -> UserError | None:
    """The error `nas search` would stop on, from a BBBC021 summary: images missing and no cache entry."""
    if summary["cache"] is not None or not summary["image_files_missing"]:
        return None
    if summary["image_root"] is None:
        return UserError(
            f"must name the folder holding the BBBC021 plate folders: the {summary['image_files']:,} image files "
            "cannot be looked for",
            key="dataset.root",
        )
    missing, needed = summary["image_files_missing"], summary["image_files"]
    return UserError(
        f"{missing:,} of {needed:,} BBBC021 image files missing under {summary['image_root']} (and no preprocessed "
        f"cache); first missing: {summary['first_missing_file']}",
        key="dataset.root",
    )


def bbbc021_summary(cfg: DatasetConfig) -> dict[str, Any]:
    from nas.data.bbbc021 import check_options, metadata_folder
    from nas.data.bbbc021_metadata import load_table

    check_options(cfg)
    table = load_table(metadata_folder(cfg))
    per_class = Counter(f.moa for f in table.fields)
    return {
        "images": len(table.fields),
        "treatments": len(table.treatments),
        "compounds": len(table.compounds),
        "classes": len(table.classes),
        "folds": len(table.compounds),
        "crops": 4 * len(table.fields),
        "plates": len(table.plates),
        "dmso_images": len(table.dmso),
        "joined_images": table.joined,
        "class_names": table.classes,
        "class_images": {name: per_class[name] for name in table.classes},
        **bbbc021_images(cfg, table),
    }


def bbbc014_summary(cfg: DatasetConfig) -> dict[str, Any]:
    from nas.data import bbbc014

    bbbc014.check_options(cfg)
    if cfg.root is not None and Path(cfg.root).is_dir():
        bbbc014.plate_files(bbbc014.image_folder(cfg))  # validates the 192 names; reads no pixels
    wells = len(bbbc014.CELL_LINES) * 4 * (len(bbbc014.POSITIVE_COLUMNS) + len(bbbc014.NEGATIVE_COLUMNS))
    tiles = bbbc014.GRID[0] * bbbc014.GRID[1]
    return {
        "images": wells,
        "treatments": wells,
        "compounds": 1,
        "classes": len(bbbc014.CLASS_NAMES),
        "folds": 2,
        "wells": wells,
        "tiles": wells * tiles,
        "cell_lines": {line: wells // 2 for line in bbbc014.CELL_LINES},
        "train_cell_line": cfg.train_cell_line,
        "class_names": list(bbbc014.CLASS_NAMES),
    }


def generic_summary(cfg: DatasetConfig, seed: int) -> dict[str, Any]:
    from nas.data.loading import load_dataset

    data = load_dataset(cfg, seed)
    splits = {
        name: 0 if x is None else len(x)
        for name, x in (("train", data.x_train), ("val", data.x_val), ("test", data.x_test))
    }
    return {
        "images": sum(splits.values()),
        "treatments": None,
        "compounds": None,
        "classes": data.num_classes,
        "folds": None,
        "splits": splits,
        "class_names": list(data.class_names),
        "channels": data.in_channels,
        "input_size": data.input_size,
    }


def summarise(cfg: DatasetConfig, seed: int) -> dict[str, Any]:
    """The summary object of a `dataset` section (see the module docstring)."""
    if cfg.name == "bbbc021":
        body = bbbc021_summary(cfg)
    elif cfg.name == "bbbc014":
        body = bbbc014_summary(cfg)
    else:
        body = generic_summary(cfg, seed)
    return {"dataset": cfg.name, **body}


def shown_value(value: Any) -> str:
    """One value as a person reads it: 1,208 not 1208, `a 3, b 4` not `{'a': 3, 'b': 4}`, yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {shown_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(shown_value(v) for v in value)
    return str(value)


def labelled(label: str, value: Any) -> list[str]:
    """`label` in its column, then the value: as it is, a list wrapped, or (a long mapping) one entry a line."""
    head = f"{label:<{LABEL_WIDTH - 1}} "
    if isinstance(value, dict) and len(value) > INLINE_ITEMS:
        width = max(len(str(k)) for k in value)
        rows = [f"{'':<{LABEL_WIDTH}}{str(k):<{width}}  {shown_value(v):>6}" for k, v in value.items()]
        return [head.rstrip(), *rows]
    text = shown_value(value)
    if not isinstance(value, dict | list | tuple):
        return [head + text]  # one value, a path maybe: never broken
    return textwrap.wrap(text, WIDTH, initial_indent=head, subsequent_indent=" " * LABEL_WIDTH,
                         break_long_words=False, break_on_hyphens=False) or [head]  # fmt: skip


def image_lines(summary: dict[str, Any]) -> list[str]:
    """The BBBC021 image check in words: how many of the files are there, and what stands in for the rest."""
    present, needed = summary["image_files_present"], summary["image_files"]
    where = f"under {summary['image_root']}" if summary["image_root"] is not None else "(dataset.root is not set)"
    lines = labelled("image files", f"{present:,} of {needed:,} present {where}")
    if summary["first_missing_file"] is not None:
        lines += labelled("first missing", summary["first_missing_file"])
    lines += labelled("cache", summary["cache"] or "none yet (the first search or training preprocesses the images)")
    return lines


def text_lines(summary: dict[str, Any]) -> list[str]:
    """The summary for reading (see the module docstring)."""
    lines: list[str] = []
    images_done = False
    for key, value in summary.items():
        if key in IMAGE_KEYS:
            if not images_done:
                lines += image_lines(summary)
                images_done = True
            continue
        if value is None or (key == "class_names" and "class_images" in summary):
            continue  # a notion this kind lacks; the class names are the keys of `class_images`
        lines += labelled(key.replace("_", " "), value)
    return lines


def summary_command(config_path: str | Path, *, overrides: Sequence[str] | None = None, as_json: bool = False) -> int:
    """`nas data summary CONFIG [--set KEY.PATH=VALUE ...] [--json]`: print the summary of the config with its
    overrides; returns 0, or raises the missing-images problem."""
    config = load_config(config_path, overrides)
    summary = summarise(config.dataset, config.seed)
    if as_json:
        print(json.dumps(summary))
    else:
        print("\n".join(text_lines(summary)))
    sys.stdout.flush()
    problem = bbbc021_problem(summary) if summary["dataset"] == "bbbc021" else None
    if problem is not None:
        raise problem
    return 0
