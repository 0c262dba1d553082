"""`RUN_DIR/best/weights.safetensors`: the trained weights of the run's best candidate, kept from its search training.

The search trains every candidate only to score it; the one it ranks best is the network a user wants, and it
is already trained (for `fitness.epochs` epochs on the training split less the validation carve). The driver
writes its weights beside `best/architecture.yaml` each time the best changes (`save_best_weights`), by atomic
replace, so the file is always one whole blob of one candidate; the blob names its genome key
(`nas.evaluate.weightsfile`), and `nas export` uses it only for that key. A best whose result carries no weights
(the `synthetic` objective, a result read back from the log on resume), or only the tensor-free stand-in the
`synthetic` objective returns under `search.inherit`, leaves the file as it is: its key then names an older
candidate, and export says to retrain instead of writing a model.

`drop_weights` frees the weights of results once the best is written: the log's index keeps every result of
the run, and a few MB a candidate must not stay in the driver's memory.
"""

import logging
from pathlib import Path
from typing import Any

from nas.atomicfile import atomic_write_bytes
from nas.evaluate.result import Result
from nas.evaluate.weightsfile import check, holds_tensors
from nas.run.rundir import RunDir

log = logging.getLogger(__name__)
FILENAME = "weights.safetensors"


def best_weights_path(run_dir: Path) -> Path:
    return run_dir / "best" / FILENAME


def save_best_weights(run: RunDir, result: Result) -> None:
    """Write `result`'s weights as the run's best, atomically; nothing when it carries none. A blob that fails
    its check or names another genome is a bug of the objective: it is logged and not written, so the file
    never holds weights that are not `result`'s."""
    if result.weights is None:
        return
    try:
        meta = check(result.weights)
    except ValueError as exc:
        log.warning("the weights of candidate %s are not kept: %s", result.key[:12], exc)
        return
    if not holds_tensors(result.weights):  # a stand-in: there is no network to export
        return
    if meta["key"] != result.key:
        log.warning("the weights of candidate %s name candidate %s: not kept", result.key[:12], meta["key"][:12])
        return
    atomic_write_bytes(best_weights_path(run.path), result.weights)


def drop_weights(results: list[Result]) -> None:
    """Free the weights `results` carry (they are on disk when one of them is the best)."""
    for result in results:
        result.weights = None


def read_best_weights(run_dir: Path, key: str) -> tuple[bytes | None, dict[str, Any] | None, str]:
    """(blob, its metadata, "") when `RUN_DIR/best/weights.safetensors` holds the intact weights of `key`;
    (None, None, why not: a few words) otherwise."""
    path = best_weights_path(run_dir)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None, None, "the run kept no trained weights"
    except OSError as exc:
        return None, None, f"{path} cannot be read ({exc.strerror or type(exc).__name__})"
    try:
        meta = check(blob)
    except ValueError as exc:
        return None, None, f"{path} is not usable: {exc}"
    if meta["key"] != key:
        return None, None, f"the run kept trained weights of another candidate ({meta['key'][:12]}), not of this one"
    return blob, meta, ""
