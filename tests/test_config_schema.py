"""`nas config schema`: the JSON Schema of the config agrees with `nas.config.parse_config` on what it accepts.

The schema is read off the config dataclasses; these tests hold it to the validator itself: every shipped config
validates, a sample of configs that nas refuses is refused by the schema too, and for every field with a range
the values at and just past each end are accepted or refused by both alike.
"""

import copy
import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from typing import Any

import pytest
from conftest import ROOT
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from nas.config import SEARCH_SECTIONS, STRATEGY_NAMES, Config, load_config, parse_config
from nas.config_schema import config_schema
from nas.errors import UserError
from nas.yamlfile import load_yaml_mapping

SCHEMA = config_schema()
VALIDATOR = Draft202012Validator(SCHEMA)
SHIPPED = sorted((ROOT / "search_configs").glob("*.yaml"))
# Settings that keep parse_config's rules across fields (elitism below the population, a sample no larger than
# the population, ...) satisfied whatever one bounded field is set to, so that only the field's range decides.
LOOSE = {
    "fitness": {"epochs": 10_000},
    "search": {
        "mode": "async",  # `search.screen` is refused in sync
        "ga": {"population": 10_000, "elitism": 0, "tournament_size": 1},
        "regularized_evolution": {"population": 100_000, "sample_size": 1},
    },
}


def nas_accepts(data: dict[str, Any]) -> bool:
    try:
        parse_config(copy.deepcopy(data))
    except UserError:
        return False
    return True


def merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


@dataclasses.dataclass(frozen=True)
class Bounded:
    """One config field with a range: its key path, type, `bounds(...)` metadata, and how to put a value there."""

    key: str
    type: type
    meta: typing.Mapping[str, Any]
    optional: bool
    place: Callable[[Any], dict[str, Any]]

    def config(self, value: Any) -> dict[str, Any]:
        return merged(LOOSE, self.place(value))


def bounded_fields(cls: type, key: str = "", wrap: Callable[[Any], Any] = lambda d: d) -> list[Bounded]:
    """Every numeric field with a range under dataclass `cls`, found from the dataclasses themselves (not from
    the schema), through nested, optional, listed and strategy-registered sections."""
    found = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        where = f"{key}.{f.name}" if key else f.name
        if "extra_sections" in f.metadata:
            for name, section in sorted(f.metadata["extra_sections"].items()):
                found += bounded_fields(section, f"{key}.{name}", lambda d, name=name, wrap=wrap: wrap({name: d}))
            continue
        tp, optional = hints[f.name], False
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp, optional = next(a for a in typing.get_args(tp) if a is not type(None)), True
        place = lambda v, name=f.name, wrap=wrap: wrap({name: v})  # noqa: E731
        if dataclasses.is_dataclass(tp):
            found += bounded_fields(tp, where, place)
        elif typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            found += bounded_fields(typing.get_args(tp)[0], f"{where}[0]", lambda d, place=place: place([d]))
        elif tp in (int, float) and (f.metadata.get("low") is not None or f.metadata.get("high") is not None):
            found.append(Bounded(where, tp, f.metadata, optional, place))
    return found


BOUNDED = bounded_fields(Config)


def edges(field: Bounded) -> list[tuple[Any, bool]]:
    """The values at and just past each end of the field's range, each with whether the range holds it."""
    low, high, meta = field.meta.get("low"), field.meta.get("high"), field.meta
    points = []

    def step(value: Any, direction: int) -> Any:  # the next integer, or the next float, that way
        return value + direction if field.type is int else math.nextafter(value, direction * math.inf)

    if low is not None:
        points += [(low, not meta.get("open_low")), (step(low, -1), False), (step(low, 1), True)]
    if high is not None:
        points += [(high, not meta.get("open_high")), (step(high, 1), False), (step(high, -1), True)]
    return [(field.type(v), inside) for v, inside in points]


def cross_field_refusal(field: Bounded, value: Any) -> bool:
    """A value in range that parse_config still refuses by a rule across fields, which no JSON Schema states:
    `search.fidelity.min_epochs` must be below `fitness.epochs`, whose own maximum is 10,000."""
    if field.key != "search.fidelity.min_epochs":
        return False
    return LOOSE["fitness"]["epochs"] <= value <= field.meta["high"]  # past its own maximum both refuse it


def test_the_schema_is_a_valid_draft_2020_12_schema_of_closed_sections():
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["additionalProperties"] is False
    for name, section in SCHEMA["$defs"].items():
        assert section["additionalProperties"] is False, name
        assert section["description"], name  # each section's class docstring
    # built now: a test module of the same process may have registered a strategy after SCHEMA was built
    search = config_schema()["$defs"]["SearchConfig"]["properties"]
    assert set(SEARCH_SECTIONS) <= set(search) and "extra" not in search
    assert search["strategy"]["enum"] == STRATEGY_NAMES.names()
    assert json.loads(json.dumps(SCHEMA)) == SCHEMA


def test_fields_carry_their_types_defaults_ranges_and_comments():
    fitness = SCHEMA["$defs"]["FitnessConfig"]["properties"]
    assert fitness["optimizer"] == {"enum": ["sgd", "adamw"], "default": "sgd"}
    assert fitness["lr"]["exclusiveMinimum"] == 0 and fitness["lr"]["maximum"] == 10
    assert fitness["lr_values"]["type"] == ["array", "null"] and fitness["lr_values"]["items"] == {"type": "number"}
    assert "dihedral on bbbc021" in fitness["augmentation"]["description"]
    assert SCHEMA["properties"]["seed"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0}
    assert SCHEMA["properties"]["search"] == {"$ref": "#/$defs/SearchConfig"}
    assert "description" not in SCHEMA["$defs"]["PSOConfig"]["properties"]["w"]  # no comment, no description


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    load_config(path)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(load_yaml_mapping(path))]
    assert errors == []


@pytest.mark.parametrize(
    "data",
    [
        {"sede": 1},
        {"search": {"pso": {"c3": 1.0}}},
        {"search": {"hgapso": {"quorom": 0.5}}},
        {"search": {"annealing": {}}},
        {"search": {"extra": {}}},
        {"search": {"strategy": "annealing"}},
        {"search": {"mode": "batch"}},
        {"fitness": {"optimizer": "adam"}},
        {"baseline": {"models": ["vgg16"]}},
        {"fitness": {"epochs": 0}},
        {"dataset": {"validation_fraction": 1.0}},
        {"search": {"hgapso": {"quorum": 1.5}}},
        {"search": {"architecture": [{"layers": 0, "growth_rate": 12}]}},
        {"fitness": {"epochs": "3"}},
        {"fitness": {"epochs": True}},
        {"fitness": {"lr": "fast"}},
        {"fitness": {"augment": 1}},
        {"search": {"budget": {"evaluations": None}}},
        {"dataset": ["digits"]},
        {"search": {"architecture": {"layers": 4}}},
    ],
    ids=repr,
)
def test_a_config_nas_refuses_is_refused_by_the_schema(data):
    assert not nas_accepts(data)
    assert not VALIDATOR.is_valid(data)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"dataset": None, "search": {"pso": None}},
        {"search": {"fidelity": {"min_epochs": 1}, "budget": {"evaluations": None, "hours": 2}}},
        {"baseline": {}, "search": {"architecture": [None, {"layers": 2}]}},
        {"search": {"strategy": "ga", "hgapso": {"fill": "random"}}},
    ],
    ids=repr,
)
def test_a_config_nas_accepts_is_accepted_by_the_schema(data):
    assert nas_accepts(data)
    assert VALIDATOR.is_valid(data)


def test_every_range_found_has_its_edges_checked():
    keys = {field.key for field in BOUNDED}
    assert {"seed", "fitness.lr", "search.budget.hours", "search.hgapso.quorum", "search.architecture[0].layers",
            "baseline.input_size", "search.fidelity.eta"} <= keys  # fmt: skip
    assert len(keys) == len(BOUNDED) > 40


@pytest.mark.parametrize("field", BOUNDED, ids=lambda f: f.key)
def test_at_and_past_each_end_of_a_range_the_schema_and_nas_agree(field):
    for value, inside in edges(field):
        if inside and cross_field_refusal(field, value):
            continue
        data = field.config(value)
        assert nas_accepts(data) is inside, (field.key, value)
        assert VALIDATOR.is_valid(data) is inside, (field.key, value)


def values_for(field: Bounded) -> st.SearchStrategy[Any]:
    """Numbers in, near and far outside the field's range (and null where the field takes it)."""
    low, high = field.meta.get("low"), field.meta.get("high")
    if field.type is int:
        values: st.SearchStrategy[Any] = st.integers(
            min_value=None if low is None else low - 1000, max_value=None if high is None else high + 1000
        )
    else:
        values = st.floats(allow_nan=False, allow_infinity=False) | st.floats(
            min_value=None if low is None else low - 1.0, max_value=None if high is None else high + 1.0
        )
    return values | st.sampled_from([v for v, _ in edges(field)]) | (st.none() if field.optional else st.nothing())


@given(st.sampled_from(BOUNDED).flatmap(lambda field: st.tuples(st.just(field), values_for(field))))
def test_the_schema_and_nas_accept_the_same_values_of_a_field_with_a_range(case):
    field, value = case
    data = field.config(value)
    if value is not None and cross_field_refusal(field, value):
        assert not nas_accepts(data) and VALIDATOR.is_valid(data)
        return
    assert VALIDATOR.is_valid(data) is nas_accepts(data), (field.key, value)


def test_a_whole_number_written_as_a_float_is_where_json_schema_and_nas_differ():
    """JSON has one number type: JSON Schema's `integer` takes 3.0, which nas refuses for an integer field."""
    assert VALIDATOR.is_valid({"seed": 3.0}) and not nas_accepts({"seed": 3.0})
    assert not VALIDATOR.is_valid({"seed": 3.5}) and not nas_accepts({"seed": 3.5})


def test_the_command_prints_the_schema_as_one_json_object(nas):
    out = nas("config", "schema")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == built_in_schema()


def built_in_schema() -> dict:
    """SCHEMA without the strategies and sections that other test modules register in this process (a plugin is
    in the schema of the process that imported it, not in the command's)."""
    from nas.config import SEARCH_SECTIONS, built_in
    from nas.strategies import STRATEGIES

    expected = copy.deepcopy(SCHEMA)
    search = expected["$defs"]["SearchConfig"]["properties"]
    for name, cls in SEARCH_SECTIONS.items():
        if not built_in(name):
            search.pop(name, None)
            expected["$defs"].pop(cls.__name__, None)
    names = search["strategy"]["enum"]
    search["strategy"]["enum"] = [n for n in names if STRATEGIES.get(n).__module__.split(".")[0] == "nas"]
    return expected


def test_config_without_a_tool_is_a_one_line_usage_error(nas):
    out = nas("config")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
