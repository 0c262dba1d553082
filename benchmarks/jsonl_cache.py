"""The JSONL caches of the resumable benchmarks: one JSON object a line, appended as each training finishes.

A benchmark killed in the middle of a write leaves a last line without its newline; `read_lines` drops it, so
that training is simply done again.
"""

import json
from pathlib import Path
from typing import Any


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The complete lines of `path` as objects, in file order; empty when the file does not exist."""
    if not path.exists():
        return []
    return [
        json.loads(line) for line in path.read_text().splitlines(keepends=True) if line.endswith("\n") and line.strip()
    ]
