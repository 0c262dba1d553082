"""Reading YAML input files safely, with one-line errors.

Only `yaml.safe_load` is ever used, so a `!!python/object` tag in a user's file is an error, never code that
runs. Every failure (missing file, a directory, unreadable bytes, a syntax error, not a mapping) becomes a
`UserError` naming the file.
"""

from pathlib import Path
from typing import Any

import yaml

from nas.errors import UserError


def load_yaml_mapping(path: str | Path, what: str = "file") -> dict[str, Any]:
    """Load `path` as a YAML mapping; raise `UserError` with a one-line reason otherwise."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} not found: {p}")
    if not p.is_file():
        raise UserError(f"{what} is not a file: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what} {p}: {type(exc).__name__}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise UserError(f"{what} {p} is not valid YAML{where}: {problem}".replace("\n", " ")) from None
    except (ValueError, RecursionError, OverflowError) as exc:
        raise UserError(f"{what} {p} is not valid YAML: {type(exc).__name__}") from None
    if data is None:
        raise UserError(f"{what} {p} is empty")
    if not isinstance(data, dict):
        raise UserError(f"{what} {p} must be a YAML mapping, not {type(data).__name__}")
    return data


def dump_yaml(data: dict[str, Any]) -> str:
    """Serialise plain data as block-style YAML, keys in the order given."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)
