"""Cross-validation folds of the cell-profiling protocols, one contract for both arms.

A dataset kind with an evaluation protocol (BBBC021: leave-one-compound-out; BBBC014: train on one cell line,
test on the other) registers a fold iterator in `FOLDS` under its dataset name. Each `Fold` is an `ImageData`
whose train split is what the fold trains on (no validation carve-out) and whose test split is what it is
scored on, plus a per-image table of the test split for the predictions CSV. The searched networks
(`nas train --cv`) and the transfer baseline (`nas baseline`) both run these folds through
`nas.evaluate.protocols.cross_validate`, so their figures come from the same folds and the same aggregation.
"""

from collections.abc import Iterator

from nas.config import DatasetConfig
from nas.data.fold import FOLDS, Fold, FoldIterator

__all__ = [
    "CV_PROTOCOLS",
    "FOLDS",
    "Fold",
    "FoldIterator",
    "count_folds",
    "cv_protocol",
    "fold_protocols",
    "iterate_folds",
]


# `nas train --cv NAME`: each protocol's name and the dataset kind whose folds it runs.
CV_PROTOCOLS = {"loco": "bbbc021", "cell-line": "bbbc014"}


def cv_protocol(dataset: str) -> str | None:
    """The `--cv` name of a dataset kind's evaluation protocol (`loco` for BBBC021), None for a kind without
    one: what the next-step hints of `nas export` and `nas report` add to the evaluation they suggest."""
    return next((name for name, kind in CV_PROTOCOLS.items() if kind == dataset), None)


def fold_protocols() -> list[str]:
    """Dataset kinds that define folds (imports their modules so they register)."""
    import nas.data.bbbc014  # noqa: F401
    import nas.data.bbbc021  # noqa: F401

    return FOLDS.names()


def iterate_folds(config: DatasetConfig, seed: int) -> Iterator[Fold]:
    """The folds of `config`'s dataset; a kind without a protocol is a `UserError` on `dataset.name`."""
    fold_protocols()
    return FOLDS.get(config.name, key="dataset.name")(config, seed)


def count_folds(config: DatasetConfig) -> int | None:
    """How many folds `iterate_folds` will give, known before any image is read (None if not cheaply known)."""
    if config.name == "bbbc021":
        from nas.data.bbbc021 import metadata_folder
        from nas.data.bbbc021_metadata import load_table

        return len(load_table(metadata_folder(config)).compounds)
    return 2 if config.name == "bbbc014" else None
