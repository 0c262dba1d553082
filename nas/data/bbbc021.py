"""BBBC021 mechanism of action (Caie et al. 2010; protocol of Kensert et al. 2019): the dataset and its folds.

`dataset.root` is the folder of unzipped plate folders (`<root>/<Image_PathName_X>/<Image_FileName_X>`);
`dataset.metadata` the folder with `BBBC021_v1_image.csv` and `BBBC021_v1_moa.csv` (default: `root`). Fields
are joined, filtered (`nas.data.bbbc021_metadata`) and preprocessed once into 2x2 normalised crops
(`nas.data.bbbc021_preprocess`). The arrays are float16, already normalised by the DMSO statistics of their
plate, so the `ImageData` carries mean 0 and std 1: that per-plate normalisation is the protocol's, and a
second one by training-set statistics would only blur it.

Two views of the same crops:

- `bbbc021` in `DATASETS` (`nas search`, `nas train`): compounds are held out whole, never fields or wells,
  since crops of one well are near-duplicates. `dataset.holdout_compounds` compounds drawn with a fixed seed
  are the test split (the same for every run, never seen during a search), as many more drawn with the run's
  seed are the validation split; the rest train. Draws prefer compounds of distinct MoA classes and never take
  the last training compound of a class. Validation and test accuracy are treatment-level: `*_groups` are
  (well, treatment) ids, so the trainer's accuracy is the median over the crops and fields of a well, the
  median over a treatment's wells, argmax per treatment (`nas.data.aggregate`). `full` trains on everything
  but the test compounds.
- `bbbc021` in `FOLDS` (`nas train --cv loco`, `nas baseline`): leave-one-compound-out, one fold per compound
  (38 on the full set), trained on all the other compounds' crops and tested on the held-out compound's.
  DMSO is not a class and is never trained on.

`dataset.train_subset` is refused, not ignored (`check_options`, which says why).
"""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.config import DatasetConfig
from nas.data.bbbc021_metadata import Bbbc021Table, load_table
from nas.data.bbbc021_preprocess import plate_statistics_of, preprocessed_crops
from nas.data.dataset import DATASETS, ImageData
from nas.data.fold import FOLDS, Fold
from nas.errors import UserError

TEST_SEED = 0  # the test compounds are part of the task, like a benchmark's test split: fixed across runs


@dataclass
class CropSet:
    """Every protocol crop (N = 4 x fields, field-major) with integer ids into the table's sorted lists."""

    table: Bbbc021Table
    x: np.ndarray
    label: np.ndarray
    compound: np.ndarray
    treatment: np.ndarray
    well: np.ndarray
    field: np.ndarray
    crop: np.ndarray

    def groups(self, mask: np.ndarray) -> np.ndarray:
        """(well, treatment) ids of the selected crops: the aggregation levels, fine to coarse."""
        return np.stack([self.well[mask], self.treatment[mask]], axis=1)


def metadata_folder(config: DatasetConfig) -> Path:
    folder = config.metadata or config.root
    if folder is None:
        raise UserError(
            "must name the folder holding BBBC021_v1_image.csv and BBBC021_v1_moa.csv", key="dataset.metadata"
        )
    return Path(folder)


def index_crops(table: Bbbc021Table, crops: np.ndarray) -> CropSet:
    """Flatten (fields, crops, C, S, S) to crops and attach each crop's ids (a view of `crops`, no copy)."""
    per_field = crops.shape[1]
    ids = {
        "label": index_of(table.classes, [f.moa for f in table.fields]),
        "compound": index_of(table.compounds, [f.compound for f in table.fields]),
        "treatment": index_of(table.treatments, [f.treatment for f in table.fields]),
        "well": index_of(sorted({(f.plate, f.well) for f in table.fields}), [(f.plate, f.well) for f in table.fields]),
        "field": np.arange(len(table.fields)),
    }
    expanded = {name: np.repeat(values, per_field) for name, values in ids.items()}
    crop = np.tile(np.arange(per_field), len(table.fields))
    return CropSet(table, crops.reshape(-1, *crops.shape[2:]), crop=crop, **expanded)


def index_of(items: list, values: list) -> np.ndarray:
    lookup = {item: i for i, item in enumerate(items)}
    return np.array([lookup[v] for v in values], dtype=np.int64)


def check_options(config: DatasetConfig) -> None:
    """Refuse a `dataset.train_subset` below 1, with its key, where it used to be accepted and ignored.

    Refused rather than applied, because no subset keeps both views of the data honest:
    - leave-one-compound-out (`nas train --cv loco`, `nas baseline`) trains each fold on every field of the
      other 37 compounds; that is the protocol whose accuracy is set beside Kensert et al.'s, and a fold
      trained on a fifth of it would be a different experiment under the same name;
    - one `dataset` section feeds both the search and that evaluation (the BBBC configs prescribe it on the
      searched network), so a subset honoured by the search view alone would change what was searched for
      without the config saying so;
    - there is no good unit to subsample: crops of one field (and fields of one well) are near-duplicates, so
      a fraction of the crops saves time but not information, and a fraction of the fields or wells removes
      whole treatments from classes that have as few as one compound.
    A cheaper search on BBBC021 takes fewer `fitness.epochs`, a smaller `dataset.resize` or `search.fidelity`.
    """
    if config.train_subset != 1.0:
        raise UserError(
            f"is {config.train_subset:g}, but bbbc021 trains on every field of its training compounds (its "
            "leave-one-compound-out protocol needs them); remove it, and for a cheaper search lower "
            "fitness.epochs or dataset.resize, or use search.fidelity",
            key="dataset.train_subset",
        )


def load_crops(config: DatasetConfig) -> CropSet:
    """Metadata, then the cached (or freshly preprocessed) crops, indexed."""
    check_options(config)
    table = load_table(metadata_folder(config))
    return index_crops(table, preprocessed_crops(config, table))


def plate_statistics_for(config: DatasetConfig) -> dict[str, dict[str, list[float]]]:
    """Each plate's DMSO mean and std per channel, the normalisation a BBBC021 model expects in front of it."""
    return plate_statistics_of(config, load_table(metadata_folder(config)))


def pick_holdout(
    compound_class: dict[str, str], n: int, rng: np.random.Generator, exclude: frozenset[str] = frozenset()
) -> list[str]:
    """`n` compounds drawn by `rng`, of distinct classes where possible, each class keeping a training compound.

    Compounds in `exclude` are neither drawn nor counted as training compounds. Returns them sorted; too few
    eligible compounds is a `UserError` on `dataset.holdout_compounds`.
    """
    candidates = sorted(c for c in compound_class if c not in exclude)
    left = Counter(compound_class[c] for c in candidates)
    order = [candidates[i] for i in rng.permutation(len(candidates))]
    picked: list[str] = []
    for distinct in (True, False):
        used = {compound_class[c] for c in picked}
        for c in order:
            k = compound_class[c]
            if len(picked) == n or c in picked or left[k] < 2 or (distinct and k in used):
                continue
            picked.append(c)
            used.add(k)
            left[k] -= 1
    if len(picked) < n:
        raise UserError(
            f"can hold out at most {len(picked)} more compounds here (every MoA class keeps one in training), "
            f"asked for {n}",
            key="dataset.holdout_compounds",
        )
    return sorted(picked)


def compound_classes(table: Bbbc021Table) -> dict[str, str]:
    return {f.compound: f.moa for f in table.fields}


def holdout_split(table: Bbbc021Table, n: int, seed: int) -> tuple[list[str], list[str]]:
    """(validation compounds, test compounds): test by the fixed `TEST_SEED`, validation by `seed`."""
    classes = compound_classes(table)
    test = pick_holdout(classes, n, np.random.default_rng(TEST_SEED))
    val = pick_holdout(classes, n, np.random.default_rng(seed), exclude=frozenset(test))
    return val, test


def members(cs: CropSet, compounds: list[str]) -> np.ndarray:
    """Mask of the crops of `compounds`."""
    ids = [cs.table.compounds.index(c) for c in compounds]
    return np.isin(cs.compound, ids)


def image_data(cs: CropSet, train: np.ndarray, val: np.ndarray | None, test: np.ndarray | None, **info) -> ImageData:
    """An `ImageData` of the masked crops; validation and test carry their (well, treatment) groups."""
    x = cs.x

    def part(mask: np.ndarray | None) -> tuple:
        return (None, None, None) if mask is None else (x[mask], cs.label[mask], cs.groups(mask))

    x_val, y_val, val_groups = part(val)
    x_test, y_test, test_groups = part(test)
    counts = {
        name: int(m.sum()) if m is not None else 0 for name, m in (("train", train), ("val", val), ("test", test))
    }
    return ImageData(
        x_train=x[train],
        y_train=cs.label[train],
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        num_classes=len(cs.table.classes),
        class_names=cs.table.classes,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        val_groups=val_groups,
        test_groups=test_groups,
        info={"dataset": "bbbc021", "counts": counts, "aggregation": "treatment", **info},
        group_reduce="median",
    )


@DATASETS.register("bbbc021")
def load_bbbc021(config: DatasetConfig, seed: int, full: bool) -> ImageData:
    """The search view: validation and test are whole compounds held out (see the module docstring)."""
    cs = load_crops(config)
    val_compounds, test_compounds = holdout_split(cs.table, config.holdout_compounds, seed)
    test = members(cs, test_compounds)
    val = None if full else members(cs, val_compounds)
    train = ~test if full else ~(test | val)
    info = {"test_compounds": test_compounds, "seed": seed, "full": full}
    if not full:
        info["val_compounds"] = val_compounds
    return image_data(cs, train, val, test, **info)


def test_table(cs: CropSet, mask: np.ndarray) -> dict[str, np.ndarray]:
    """One row per test crop, for the predictions CSV."""
    fields = [cs.table.fields[i] for i in cs.field[mask]]
    return {
        "compound": np.array([f.compound for f in fields]),
        "concentration": np.array([f.concentration for f in fields]),
        "moa": np.array([f.moa for f in fields]),
        "plate": np.array([f.plate for f in fields]),
        "well": np.array([f.well for f in fields]),
        "replicate": np.array([f.replicate for f in fields]),
        "image": np.array([f.paths[2] for f in fields]),
        "crop": cs.crop[mask],
    }


def loco_splits(table: Bbbc021Table) -> Iterator[tuple[str, np.ndarray]]:
    """(held-out compound, test mask over `table.fields`) per fold, compounds in alphabetical order; the
    training fields of a fold are the complement, so no compound is ever on both sides."""
    compounds = np.array([f.compound for f in table.fields])
    for compound in table.compounds:
        yield compound, compounds == compound


@FOLDS.register("bbbc021")
def loco_folds(config: DatasetConfig, seed: int) -> Iterator[Fold]:
    """Leave-one-compound-out: one fold per compound (see `loco_splits`), crops of a field kept together."""
    cs = load_crops(config)
    for compound, test_fields in loco_splits(cs.table):
        test = test_fields[cs.field]
        data = image_data(cs, ~test, None, test, held_out=compound, seed=seed)
        yield Fold(compound, data, test_table(cs, test), ("compound", "concentration", "moa"), level="treatment")
