"""Reading YAML input files safely, with one-line errors.

Only `yaml.safe_load` is ever used, so a `!!python/object` tag in a user's file is an error, never code that
runs. Every failure (missing file, a directory, unreadable bytes, a syntax error, not a mapping) becomes a
`UserError` naming the file.

A key given twice in one mapping is refused with its key path and both line numbers: YAML loaders keep the
last one silently, so `seed: 0` followed further down by `seed: 7` ran seed 7 while the file seemed to say 0.
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
        data = load_unique(text, f"{what} {p}")
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


def load_unique(text: str, where: str) -> Any:
    """`yaml.safe_load(text)`, parsed once: the node tree is checked for duplicate keys, then constructed."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        check_duplicate_keys(node, where)
        return loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def check_duplicate_keys(root: yaml.Node | None, where: str) -> None:
    """Refuse a mapping that names one key twice, anywhere in the document (a `UserError` with the key path and
    both lines). Each node is visited once, so a document of aliases to aliases (a "billion laughs" bomb) costs
    its size, not its expansion."""
    stack: list[tuple[yaml.Node, str]] = [(root, "")] if root is not None else []
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[object, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                if name is not None and name != "<<":
                    here = f"{path}.{name}" if path else str(name)
                    if name in lines:
                        first, second = lines[name], key.start_mark.line + 1
                        raise UserError(f"{where}: {here}: duplicate key (lines {first} and {second})")
                    lines[name] = key.start_mark.line + 1
                stack.append((value, f"{path}.{name}" if path else str(name)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))


def dump_yaml(data: dict[str, Any]) -> str:
    """Serialise plain data as block-style YAML, keys in the order given."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)
