"""A cross-validation fold and the registry of fold iterators: what a dataset module with an evaluation protocol
(`nas.data.bbbc021`, `nas.data.bbbc014`) imports to register its folds. The lookup (`nas.data.folds`) imports
those modules in turn, so this module is the leaf both stand on.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from nas.config import DatasetConfig
from nas.data.dataset import ImageData
from nas.registry import Registry


@dataclass
class Fold:
    """One fold: `data` (train = fit on it, test = score on it, with `test_groups`), and the test table.

    `test_table` holds one column per property of a test image (same order as `data.x_test`), e.g. compound,
    concentration, plate, well, field, crop; `group_columns` names those that describe the top-level group
    (a BBBC021 treatment, a BBBC014 well), which label the aggregated rows. `level` names that group kind.
    """

    name: str
    data: ImageData
    test_table: dict[str, np.ndarray]
    group_columns: tuple[str, ...]
    level: str = "group"
    info: dict[str, object] = field(default_factory=dict)


FoldIterator = Callable[[DatasetConfig, int], Iterator[Fold]]
FOLDS: Registry[FoldIterator] = Registry("cross-validation protocol")
