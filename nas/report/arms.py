"""The arms run on this dataset, side by side: the search's best network beside the pretrained-transfer arm.

The transfer arm writes `RUN_DIR/baseline/<model>/metrics.json` (`nas baseline --run-dir RUN_DIR`); those files
are read only through `nas.transfer.results.load_baseline_results`, which owns their format. The NAS arm's row
is the search's best network with its validation accuracy (the search fitness), and, when it was retrained
into `RUN_DIR/retrained/` (what `nas export` suggests), that retrain's test accuracy as a second row, since the
transfer arm reports test figures. The paper's figure (Kensert et al. 2019) is shown where there is one.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.run.snapshot import RunSnapshot
from nas.transfer.results import load_baseline_results

RETRAINED = "retrained"


@dataclass(frozen=True)
class ArmRow:
    arm: str
    model: str
    params: int | None
    accuracy: float | None
    metric: str
    paper: float | None = None


def nas_rows(snapshot: RunSnapshot) -> list[ArmRow]:
    """The search's best network: validation fitness, plus the retrained test accuracy when there is one."""
    if not snapshot.best_first:
        return []
    best = snapshot.best_first[0]
    arm = f"NAS ({snapshot.config.search.strategy})"
    rows = [ArmRow(arm, f"best found ({best.key[:12]})", best.params, best.fitness, "validation accuracy (fitness)")]
    retrained = retrained_metrics(snapshot.run.path / RETRAINED)
    if retrained is not None:
        accuracy = number(retrained.get("test_accuracy", retrained.get("accuracy")))
        rows.append(ArmRow(arm, "best found, retrained", best.params, accuracy, "test accuracy"))
    return rows


def retrained_metrics(folder: Path) -> dict[str, Any] | None:
    """`metrics.json` of `nas train --full --save folder`, or None when absent or unreadable."""
    try:
        data = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def transfer_rows(run_dir: Path) -> list[ArmRow]:
    """One row per backbone of the transfer arm that ran in this run directory."""
    return [
        ArmRow(
            arm=str(m.get("arm", "transfer")),
            model=str(m.get("label", m.get("model", "?"))),
            params=m.get("params"),
            accuracy=number(m.get("accuracy")),
            metric=str(m.get("metric", "accuracy")),
            paper=number(m.get("paper_accuracy")),
        )
        for m in load_baseline_results(run_dir)
    ]


def arm_rows(snapshot: RunSnapshot) -> list[ArmRow]:
    """All arms, the NAS arm first; only the NAS rows when no other arm ran here."""
    return nas_rows(snapshot) + transfer_rows(snapshot.run.path)
