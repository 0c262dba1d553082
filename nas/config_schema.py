"""`nas config schema`: a JSON Schema (draft 2020-12) of the whole search config, for editors and docs.

The schema is read off the same dataclasses and field metadata that `nas.config.from_mapping` validates
against, so it cannot drift from them: a type hint gives the JSON type (`Literal[...]` an enum, `X | None` a
nullable value, `list[X]` an array, `dict` an open object), `bounds(...)` gives `minimum`/`maximum`
(`exclusive*` for an open end), every section is closed (`additionalProperties: false`, as an unknown key is
refused; an open object such as `ray.runtime_env` is another program's mapping), and `search` lists the
sections registered by strategies beside the built-in ones. Each section's description is its class docstring,
each field's the comment written above it (or beside it) in `nas/config.py` or the strategy's module. This
module is part of the package `nas`, whose import registers every strategy first (`nas.config.STRATEGY_NAMES`).

What a schema cannot say is left to `nas.config.parse_config`: rules across fields (`search.ga.elitism` below
`search.ga.population`, `search.fidelity.min_epochs` below `fitness.epochs`, ...; `search.objectives` is the one
such rule it does state: fitness first, no repeats), the run name's characters,
`fitness.lr_values`' range, and the integer/float distinction (JSON Schema counts `3.0` as an integer).
"""

import ast
import dataclasses
import inspect
import io
import json
import re
import textwrap
import tokenize
import types
import typing
from typing import Any, Literal

from nas.config import STRATEGY_NAMES, BudgetConfig, Config, SearchConfig

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCALARS = {bool: "boolean", int: "integer", float: "number", str: "string"}
TOOL_COMMENTS = ("fmt:", "noqa", "type:", "pragma")  # directives to linters, not descriptions of a field


def field_comments(cls: type) -> dict[str, str]:
    """Each field's comment in the class source: the comment lines right above it, then one beside it.

    Empty when the source cannot be read (a build without .py files): descriptions are documentation only."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, tuple[str, bool]] = {}  # line -> (text, alone on its line)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            if not text.startswith(TOOL_COMMENTS):
                comments[token.start[0]] = (text, not token.line[: token.start[1]].strip())
    found: dict[str, str] = {}
    tree = ast.parse(source).body[0]
    if not isinstance(tree, ast.ClassDef):
        return found
    for node in tree.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above = []
        line = node.lineno - 1
        while line in comments and comments[line][1]:
            above.insert(0, comments[line][0])
            line -= 1
        beside = comments.get(node.end_lineno or node.lineno, ("", True))
        text = " ".join(above + ([beside[0]] if not beside[1] else []))
        if text:
            found[node.target.id] = text
    return found


class SchemaBuilder:
    """Walks the config dataclasses once, each one a `$defs` entry referred to wherever it is used."""

    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}

    def ref(self, cls: type) -> dict[str, Any]:
        name = cls.__name__
        if name not in self.defs:
            self.defs[name] = {}  # reserved first, so a section that refers to itself ends
            self.defs[name] = self.section(cls)
        return {"$ref": f"#/$defs/{name}"}

    def section(self, cls: type) -> dict[str, Any]:
        """A dataclass as an object of its fields. `null` stands for the section's defaults, as in
        `from_mapping` (an empty `dataset:` in YAML is `null`)."""
        hints = typing.get_type_hints(cls)
        comments = field_comments(cls)
        properties: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if "extra_sections" in f.metadata:
                for name, section_cls in sorted(f.metadata["extra_sections"].items()):
                    properties[name] = self.ref(section_cls)
                continue
            schema = self.value(hints[f.name], f.metadata)
            if comments.get(f.name):
                schema["description"] = comments[f.name]
            default = default_of(f)
            if default is not dataclasses.MISSING:
                schema["default"] = default
            properties[f.name] = schema
        schema = {"type": ["object", "null"], "properties": properties, "additionalProperties": False}
        if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):  # not dataclass's generated one
            schema = {"description": paragraphs(cls.__doc__), **schema}
        return schema

    def value(self, tp: Any, meta: typing.Mapping[str, Any]) -> dict[str, Any]:
        """The schema of one value of type hint `tp`, held to the field's range in `meta`, as `convert` and
        `check_bounds` hold it."""
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            return nullable(self.value(args[0], meta))
        if origin is Literal:
            return {"enum": list(typing.get_args(tp))}
        if origin is list:
            return {"type": "array", "items": self.value(typing.get_args(tp)[0], {})}
        if origin is dict:
            return {"type": "object"}  # another program's mapping (`ray.runtime_env`): its keys are not ours
        if dataclasses.is_dataclass(tp):
            return self.ref(tp)
        if tp in SCALARS:
            schema: dict[str, Any] = {"type": SCALARS[tp]}
            if tp in (int, float):
                schema.update(range_of(meta))
            return schema
        raise TypeError(f"unsupported config type {tp!r}")


def paragraphs(doc: str) -> str:
    """A docstring as text for an editor's tooltip: each paragraph on one line, blank lines between them."""
    return re.sub(r"(?<!\n)\n(?!\n)", " ", inspect.cleandoc(doc))


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` that also takes `null`."""
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    return {"anyOf": [schema, {"type": "null"}]}


def range_of(meta: typing.Mapping[str, Any]) -> dict[str, Any]:
    """`bounds(...)` metadata as JSON Schema's numeric keywords (`check_bounds`' rule)."""
    schema = {}
    if meta.get("low") is not None:
        schema["exclusiveMinimum" if meta.get("open_low") else "minimum"] = meta["low"]
    if meta.get("high") is not None:
        schema["exclusiveMaximum" if meta.get("open_high") else "maximum"] = meta["high"]
    return schema


def default_of(f: dataclasses.Field) -> Any:
    """A field's default as JSON, or MISSING for a section (its own fields carry their defaults)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        if not dataclasses.is_dataclass(value) and "extra_sections" not in f.metadata:
            return value
    return dataclasses.MISSING


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a whole config file (`Config`), with every registered strategy and its section."""
    builder = SchemaBuilder()
    builder.ref(Config)
    defs = builder.defs
    root = {k: v for k, v in defs.pop(Config.__name__).items() if k != "type"}
    search = defs[SearchConfig.__name__]["properties"]
    search["strategy"]["enum"] = STRATEGY_NAMES.names()
    # `parse_config`: objectives start with fitness and name each objective once.
    search["objectives"].update(uniqueItems=True, minItems=1, prefixItems=[{"const": "fitness"}])
    # `parse_config`: a budget needs evaluations, hours or both; hours are absent (null) by default.
    defs[BudgetConfig.__name__]["not"] = {
        "type": "object",
        "required": ["evaluations"],
        "properties": {"evaluations": {"type": "null"}, "hours": {"type": "null"}},
    }
    return {
        "$schema": DRAFT,
        "title": "evonas search config",
        "type": "object",
        **root,
        "$defs": dict(sorted(defs.items())),
    }


def schema_command() -> int:
    """Print the config's JSON Schema as one JSON object on stdout."""
    print(json.dumps(config_schema(), indent=2))
    return 0
