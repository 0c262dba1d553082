"""`nas data summary CONFIG [--json]`: what a dataset config resolves to, before anything is trained.

One object, whatever the kind, with the keys `dataset`, `images`, `treatments`, `compounds`, `classes` and
`folds` (null where a kind has no such notion), plus kind-specific extras:

- `bbbc021`: from the two metadata CSVs alone, so it answers on a laptop without the 40 GB of images: images
  are protocol fields (each 3 TIFFs, 4 crops), on the real metadata 1,208 fields, 103 treatments, 38
  compounds, 12 MoA classes, 38 leave-one-compound-out folds;
- `bbbc014`: from the plate layout (and, when `dataset.root` holds the BMPs, their names are checked, no pixel
  read): 64 images of 64 wells (`treatments` are wells), 1 compound (TNF-alpha), 2 classes, 2 folds;
- any other kind: the dataset is loaded (`nas.data.loading.load_dataset`, cached after the first time) and
  the images of each split and the classes are reported.
"""

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from nas.config import DatasetConfig, load_config

SUMMARY_KEYS = ("dataset", "images", "treatments", "compounds", "classes", "folds")


def bbbc021_summary(cfg: DatasetConfig) -> dict[str, Any]:
    from nas.data.bbbc021 import metadata_folder
    from nas.data.bbbc021_metadata import load_table

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
    }


def bbbc014_summary(cfg: DatasetConfig) -> dict[str, Any]:
    from nas.data import bbbc014

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


def summary_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    summary = summarise(config.dataset, config.seed)
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0
