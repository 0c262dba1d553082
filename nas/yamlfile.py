"""Reading YAML input files safely, with one-line errors.

Only `yaml.SafeLoader` (what `yaml.safe_load` uses, here with plain numbers) ever reads a file, so a
`!!python/object` tag in a user's file is an error, never code that runs. Every failure (missing file, a
directory, unreadable bytes, a syntax error, not a mapping) becomes a `UserError` naming the file.

A key given twice in one mapping is refused with its key path and both line numbers: YAML loaders keep the
last one silently, so `seed: 0` followed further down by `seed: 7` ran seed 7 while the file seemed to say 0.

Numbers are read as a person reads them. YAML 1.1 (PyYAML's dialect) takes `1:30` as 90 (base 60), `017` as 15
(octal), and accepts `0x1F`, `0b101`, `1_000` and `+5`: plain scalars spelled so stay strings here, and the
field that wanted a number names its key. Only `-?digits` without leading zeros is an integer, and floats lose
the base-60 and underscore forms. An integer of more digits than Python converts (4,300) is refused with its key
path before it is built, as is an explicit `!!int`/`!!float` tag on such a spelling.
"""

import re
from pathlib import Path
from typing import Any

import yaml

from nas.errors import UserError, shown

INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
STR_TAG = "tag:yaml.org,2002:str"
DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)")
FLOAT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF))"
                   r"|\.(?:nan|NaN|NAN)")  # fmt: skip
MAX_DIGITS = 4300  # CPython's default int_max_str_digits: a longer numeral makes int() raise ValueError


class PlainNumberLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` whose plain numbers are decimal only: every other YAML 1.1 spelling of an int (base 60,
    octal, hex, binary, underscores, a `+` sign) or a float (base 60, underscores) resolves as a string."""

    def resolve(self, kind: type, value: str | None, implicit: tuple[bool, bool]) -> str:
        tag = super().resolve(kind, value, implicit)
        if value is not None and implicit[0] and not plain_number(tag, value):
            return STR_TAG
        return tag


def plain_number(tag: str, value: str) -> bool:
    """Whether a scalar tagged int or float is spelled in plain decimal (any other tag passes)."""
    if tag == INT_TAG:
        return DECIMAL.fullmatch(value) is not None
    if tag == FLOAT_TAG:
        return FLOAT.fullmatch(value) is not None
    return True


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
    loader = PlainNumberLoader(text)
    try:
        node = loader.get_single_node()
        check_duplicate_keys(node, where)
        return loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def check_duplicate_keys(root: yaml.Node | None, where: str) -> None:
    """Refuse a mapping that names one key twice, anywhere in the document (a `UserError` with the key path and
    both lines), and a number no field could take (`check_number`). Each node is visited once, so a document of
    aliases to aliases (a "billion laughs" bomb) costs its size, not its expansion."""
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
                stack.append((key, path))
                stack.append((value, f"{path}.{name}" if path else str(name)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))
        elif isinstance(node, yaml.ScalarNode):
            check_number(node, path, where)


def check_number(node: yaml.ScalarNode, path: str, where: str) -> None:
    """Refuse, naming its key path, an int no field takes: more digits than Python converts (`int()` would raise
    a ValueError naming nothing), or an explicit `!!int`/`!!float` tag on a spelling other than plain decimal."""
    at = f"{where}: {path}" if path else where
    if not plain_number(node.tag, node.value):
        kind = "integer" if node.tag == INT_TAG else "number"
        raise UserError(
            f"{at}: must be a plain decimal {kind}, not {shown(node.value)} (line {node.start_mark.line + 1})"
        )
    if node.tag == INT_TAG and len(node.value.lstrip("-")) > MAX_DIGITS:
        raise UserError(f"{at}: an integer of {len(node.value.lstrip('-')):,} digits is far past any allowed value")


def dump_yaml(data: dict[str, Any]) -> str:
    """Serialise plain data as block-style YAML, keys in the order given."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)
