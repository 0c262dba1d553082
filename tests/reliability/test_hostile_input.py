"""Hostile input: hundreds of generated bad configs, search spaces and architecture files, fed to every command
that reads one. Each must be refused with exit 2 and exactly one non-empty line on stderr naming the problem
(for a config value, its key path), no traceback, nothing executed and no run directory made.

Every case starts from a shipped valid file (`search_configs/smoke.yaml`, `search_configs/digits_quick.yaml`,
`encodings/*.yaml`, `examples/densenet_small.yaml`) and breaks it at one key path by a mutation that is bad by
construction: a wrong type, a value past the field's range (read from the config dataclasses' own bounds, so
a new field is covered the day it is added), a huge number, a missing or unknown key, a cross-field rule
broken. Beside them: files that are not YAML at all (empty, binary, invalid UTF-8), deeply nested documents,
alias bombs, and `!!python/` tags whose payload would create a marker file if it ran.

The cases run in-process through `reliability_runs.cli` (hundreds take seconds); a sample goes through the
real `nas` process too, to show that the process itself prints no traceback. Hypothesis is derandomized, so CI
sees the same cases every run; `tests/test_bad_input.py` keeps the hand-written architecture cases.
"""

import dataclasses
import logging
import math
import resource
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from conftest import run_nas
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_runs import ROOT, Outcome, cli, synthetic_config

from nas import config as config_module
from nas.model.preprocess import OPTIONAL as PREPROCESS_OPTIONAL

DIGITS_CONFIG = ROOT / "search_configs/digits_quick.yaml"
GOOD_ARCH = ROOT / "examples/densenet_small.yaml"
CONFIG_BASES = ("smoke", "digits_quick")
SPACE_BASES = ("densenet_small", "densenet_cifar")
HYPOTHESIS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
}


# --- running a case ---------------------------------------------------------------------------------------------


def nas(*argv: str) -> Outcome:
    """`cli(*argv)` with logging bound to this call's stderr: `nas.cli.main` configures the root logger once, on
    the stream of the first call, so without this a log line of a later call would escape the one-line check."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers.clear()
    try:
        return cli(*argv)
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def assert_refused(out: Outcome, *needles: str) -> str:
    """Exit 2, one non-empty stderr line holding every needle, no traceback, nothing on stdout."""
    assert out.exception is None, f"escaped {type(out.exception).__name__}: {out.exception}"
    lines = out.error_lines()
    assert out.code == 2, (out.code, out.stderr[-2000:])
    assert len(lines) == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert not out.stdout.strip(), out.stdout[:500]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@dataclass
class Case:
    """One bad file: its text (or bytes), what the error line must name, and how it was made."""

    data: Any  # a mapping to dump as YAML, or raw text/bytes
    needle: str
    what: str

    def write(self, path: Path) -> Path:
        if isinstance(self.data, bytes):
            path.write_bytes(self.data)
        elif isinstance(self.data, str):
            path.write_text(self.data, encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(self.data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path


class Folder:
    """A fresh numbered folder per case, under one pytest tmp_path (hypothesis reuses the function's fixtures)."""

    def __init__(self, root: Path):
        self.root, self.count = root, 0

    def next(self) -> Path:
        self.count += 1
        folder = self.root / f"case{self.count}"
        folder.mkdir()
        return folder


def config_commands(cfg: Path, folder: Path, *needles: str) -> int:
    """Every command that reads a search config, each refused the same way; returns how many ran."""
    run_dir, baseline_dir = folder / "run", folder / "baseline"
    calls: list[tuple[str, ...]] = [
        ("search", str(cfg), "--run-dir", str(run_dir), "--workers", "0", "--max-evaluations", "1"),
        ("data", "summary", str(cfg)),
        ("train", str(GOOD_ARCH), "--config", str(cfg), "--epochs", "1"),
        ("baseline", str(cfg), "--run-dir", str(baseline_dir), "--epochs", "1"),
    ]
    for argv in calls:
        assert_refused(nas(*argv), *needles)
    assert not run_dir.exists(), "a refused config made a run directory"
    assert not baseline_dir.exists(), "a refused config made a baseline directory"
    return len(calls)


# --- the config schema, read from nas.config --------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """One config key: its dotted path, type hint and range metadata."""

    path: str
    hint: Any
    meta: typing.Mapping[str, Any]


def config_keys(cls: type) -> list[tuple[str, Any, typing.Mapping[str, Any]]]:
    """The keys of config dataclass `cls` (name, type hint, range metadata): its fields, with the holder of
    registered sections (`search.extra`) replaced by the sections strategies declare (`search.pso`, ...)."""
    hints = typing.get_type_hints(cls)
    keys: list[tuple[str, Any, typing.Mapping[str, Any]]] = []
    for f in dataclasses.fields(cls):
        if "extra_sections" in f.metadata:
            keys += [(name, section, {}) for name, section in sorted(f.metadata["extra_sections"].items())]
        else:
            keys.append((f.name, hints[f.name], f.metadata))
    return keys


def config_leaves(cls: type = config_module.Config, prefix: str = "") -> list[Leaf]:
    """Every leaf key of the config dataclasses (sections, including the optional `baseline` and the strategies'
    registered ones, are walked)."""
    leaves = []
    for name, hint, meta in config_keys(cls):
        path = f"{prefix}{name}"
        inner = [a for a in typing.get_args(hint) if a is not type(None)] if is_optional(hint) else [hint]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            leaves += config_leaves(inner[0], f"{path}.")
        else:
            leaves.append(Leaf(path, hint, meta))
    return leaves


def config_sections(cls: type = config_module.Config, prefix: str = "") -> list[str]:
    out = []
    for name, hint, _ in config_keys(cls):
        inner = [a for a in typing.get_args(hint) if a is not type(None)] if is_optional(hint) else [hint]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            out.append(f"{prefix}{name}")
            out += config_sections(inner[0], f"{prefix}{name}.")
    return out


def is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def base_type(hint: Any) -> Any:
    if is_optional(hint):
        return [a for a in typing.get_args(hint) if a is not type(None)][0]
    return hint


LEAVES = config_leaves()
SECTIONS = config_sections()

NOT_A_NUMBER = st.sampled_from(["fast", "", "1e3x", [1], {"a": 1}, [], True, False])
NOT_A_STRING = st.sampled_from([5, 1.5, ["a"], {"k": "v"}, True, 10**100])
NOT_A_BOOL = st.sampled_from(["yes", "no", "true", 1, 0, 0.0, [True], {"on": True}])
HUGE = st.sampled_from([10**100, -(10**100), 1e308, -1e308, 10**400, float("inf"), float("-inf"), float("nan")])


def out_of_range(hint: Any, meta: typing.Mapping[str, Any]) -> st.SearchStrategy:
    """Numbers past a field's bounds (an open end counts its own value as outside), and huge ones."""
    is_int = base_type(hint) is int
    options: list[st.SearchStrategy] = []
    low, high = meta.get("low"), meta.get("high")
    if low is not None:
        edge = (
            low
            if meta.get("open_low")
            else (low - 1 if is_int else math.nextafter(low, -math.inf) if low != 0 else -1e-9)
        )
        below = st.integers(max_value=int(math.floor(edge)), min_value=int(math.floor(edge)) - 10**6)
        options += [st.just(int(edge) if is_int else float(edge)), below, st.just(-(10**100)), st.just(-1e308)]
    if high is not None:
        edge = high if meta.get("open_high") else (high + 1 if is_int else high * 1.5 + 1)
        options += [st.just(int(edge) if is_int else float(edge)), st.just(10**100), st.just(10**400)]
        if not is_int:
            options.append(st.just(1e308))
    if not is_int:
        options.append(st.sampled_from([float("inf"), float("-inf"), float("nan")]))
    if is_int:
        options.append(st.sampled_from([1e308, 2.5, float("nan")]))  # floats where an integer is wanted
    return st.one_of(options) if options else st.nothing()


def bad_values(leaf: Leaf) -> st.SearchStrategy:
    """Values that must be refused at `leaf`, by construction."""
    tp = base_type(leaf.hint)
    origin = typing.get_origin(tp)
    none = [] if is_optional(leaf.hint) else [st.none()]
    if origin is Literal:
        choices = typing.get_args(tp)
        wrong = st.one_of(st.text(max_size=12).filter(lambda s: s not in choices), NOT_A_STRING, st.just([choices[0]]))
        return st.one_of(wrong, *none)
    if origin is list:
        item = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(item):  # search.architecture: a list of fixed blocks
            return st.sampled_from(
                ["x", 5, [5], [{"layers": 0, "growth_rate": 4}], [{"bogus": 1}], [{"layers": 65}], [{"layers": "4"}]]
            )
        if typing.get_origin(item) is Literal:  # baseline.models
            return st.sampled_from(["resnet50", ["vgg16"], [1], [["resnet50"]], {"resnet50": 1}])
        return st.one_of(  # fitness.lr_values
            st.sampled_from(["0.1", 0.1, ["x"], [0.0], [], [11], [-1], [float("nan")], [10**400], {"a": 1}])
        )
    if tp is bool:
        return st.one_of(NOT_A_BOOL, *none)
    if tp is str:
        wrong = [NOT_A_STRING, *none]
        if leaf.meta.get("path"):
            wrong.append(st.sampled_from(["a\x00b", "\x00"]))
        return st.one_of(wrong)
    if tp in (int, float):
        return st.one_of(NOT_A_NUMBER, out_of_range(leaf.hint, leaf.meta), *none)
    if origin is dict:  # ray.runtime_env: another program's mapping, refused only when it is not one
        return st.one_of(st.sampled_from(["pip", 5, 2.5, True, ["pip"], [{"pip": []}]]), *none)
    raise AssertionError(f"no bad values for {leaf.path}: {leaf.hint}")


def shipped_config(name: str) -> dict[str, Any]:
    """A shipped config as a mapping, a relative encoding path made absolute so it reads the same from tmp (a
    space's name stays a name)."""
    data = yaml.safe_load((ROOT / f"search_configs/{name}.yaml").read_text())
    if "/" in data["encoding"] or data["encoding"].endswith(".yaml"):
        data["encoding"] = str((ROOT / "search_configs" / data["encoding"]).resolve())
    return data


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = data
    for name in parents:
        if not isinstance(node.get(name), dict):
            node[name] = {}
        node = node[name]
    node[last] = value


KEY_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,14}", fullmatch=True)


@st.composite
def config_cases(draw: Callable) -> Case:
    """A shipped config broken at one key path, in one of five ways."""
    base = draw(st.sampled_from(CONFIG_BASES))
    data = shipped_config(base)
    kind = draw(st.sampled_from(["value"] * 6 + ["unknown key", "section", "cross"]))
    if kind == "value":
        leaf = draw(st.sampled_from(LEAVES))
        value = draw(bad_values(leaf))
        set_path(data, leaf.path, value)
        return Case(data, leaf.path, f"{base}: {leaf.path} = {config_module.short(value)}")
    if kind == "unknown key":
        where = draw(st.sampled_from(["", *SECTIONS]))
        known = {name for name, _, _ in config_keys(section_class(where))}
        name = draw(KEY_NAMES.filter(lambda n: n not in known))
        path = f"{where}.{name}" if where else name
        set_path(data, path, draw(st.sampled_from([1, "x", None, [1], {"a": 1}])))
        return Case(data, path, f"{base}: unknown key {path}")
    if kind == "section":
        where = draw(st.sampled_from(SECTIONS))
        value = draw(st.sampled_from([5, "yes", [1, 2], 1.5, True]))
        set_path(data, where, value)
        return Case(data, where, f"{base}: section {where} = {value!r}")
    rule = draw(st.sampled_from(["elitism", "tournament", "sample", "budget"]))
    if rule == "elitism":
        population = draw(st.integers(2, 50))
        data["search"]["ga"] = {"population": population, "elitism": draw(st.integers(population, 100))}
        return Case(data, "search.ga.elitism", f"{base}: elitism >= population {population}")
    if rule == "tournament":
        population = draw(st.integers(2, 50))
        tournament = draw(st.integers(population + 1, 100))
        data["search"]["ga"] = {"population": population, "tournament_size": tournament, "elitism": 0}
        return Case(data, "search.ga.tournament_size", f"{base}: tournament {tournament} > population {population}")
    if rule == "sample":
        population = draw(st.integers(2, 1000))
        sample = draw(st.integers(population + 1, 100_000))
        data["search"]["regularized_evolution"] = {"population": population, "sample_size": sample}
        return Case(data, "search.regularized_evolution.sample_size", f"{base}: sample {sample} > population")
    data["search"]["budget"] = {"evaluations": None, "hours": None}
    return Case(data, "search.budget", f"{base}: no budget")


def section_class(path: str) -> type:
    cls: Any = config_module.Config
    for name in filter(None, path.split(".")):
        cls = base_type({key: hint for key, hint, _ in config_keys(cls)}[name])
    return cls


# --- search-space and architecture files ------------------------------------------------------------------------

NOT_AN_INT = st.sampled_from(["8", 8.0, 2.5, True, None, [8], {"n": 8}, "", float("nan"), 1e308])


def bad_positive_int(maximum: int) -> st.SearchStrategy:
    return st.one_of(
        NOT_AN_INT, st.integers(max_value=0, min_value=-(10**6)), st.integers(maximum + 1, maximum + 10**6), HUGE
    )


BAD_COMPRESSION = st.one_of(
    st.sampled_from([0, 0.0, -0.5, 1.0000001, 2, "0.5", None, True, [0.5], 10**400, float("nan")]),
    st.floats(min_value=1.0, exclude_min=True, allow_infinity=True),
    st.floats(max_value=0.0),
)
BAD_LR = st.sampled_from([0, -1e-3, "fast", True, [0.1], float("inf"), float("nan"), 10**400, -(10**400)])


def bad_range(maximum: int) -> st.SearchStrategy:
    """A `[low, high]` integer range that is not one: reversed, out of [1, maximum], wrong shape or types."""
    reversed_pair = st.integers(1, maximum - 1).flatmap(lambda lo: st.tuples(st.integers(lo + 1, maximum), st.just(lo)))
    return st.one_of(
        reversed_pair.map(list),
        st.sampled_from([[0, 3], [1, maximum + 1], [-5, 2], [1], [1, 2, 3], "1-6", 4, None, [1.5, 3], [True, 3]]),
        st.sampled_from([[1, 10**100], [10**400, 10**400], [1, float("inf")], [{"a": 1}, 2], []]),
    )


def shipped_space(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / f"encodings/{name}.yaml").read_text())


@st.composite
def space_cases(draw: Callable) -> Case:
    """A shipped search space broken at one key."""
    base = draw(st.sampled_from(SPACE_BASES))
    data = shipped_space(base)
    b = draw(st.integers(0, len(data["blocks"]) - 1))
    kind = draw(
        st.sampled_from(
            ["stem", "bottleneck", "compression", "layers", "growth", "lr", "format", "missing", "unknown", "blocks"]
            + ["block key", "name"]
        )
    )
    if kind == "stem":
        data["stem_channels"] = draw(bad_positive_int(4096))
        return Case(data, "stem_channels", f"{base}: stem_channels")
    if kind == "bottleneck":
        data["bottleneck_width"] = draw(bad_positive_int(64))
        return Case(data, "bottleneck_width", f"{base}: bottleneck_width")
    if kind == "compression":
        data["compression"] = draw(BAD_COMPRESSION)
        return Case(data, "compression", f"{base}: compression = {data['compression']!r}")
    if kind == "layers":
        data["blocks"][b]["layers"] = draw(bad_range(64))
        return Case(data, f"blocks[{b}].layers", f"{base}: blocks[{b}].layers = {data['blocks'][b]['layers']!r}")
    if kind == "growth":
        data["blocks"][b]["growth_rate"] = draw(bad_range(512))
        return Case(data, f"blocks[{b}].growth_rate", f"{base}: blocks[{b}].growth_rate")
    if kind == "lr":
        data["learning_rate"] = draw(
            st.sampled_from([[0, 1], [-1, 1], [0.1, 0.01], ["a", 1], [1e-3], 0.1, [float("inf"), 1], [1, 10**400]])
        )
        return Case(data, "learning_rate", f"{base}: learning_rate = {data['learning_rate']!r}")
    if kind == "format":
        data["format"] = draw(st.sampled_from(["nas-search-space/2", "", None, 1, ["nas-search-space/1"]]))
        return Case(data, "format", f"{base}: format = {data['format']!r}")
    if kind == "missing":
        key = draw(st.sampled_from(["stem_channels", "bottleneck_width", "compression", "blocks"]))
        del data[key]
        return Case(data, key, f"{base}: {key} missing")
    if kind == "unknown":
        known = {"format", "name", "stem_channels", "bottleneck_width", "compression", "blocks", "learning_rate"}
        key = draw(KEY_NAMES.filter(lambda n: n not in known))
        data[key] = 1
        return Case(data, key, f"{base}: unknown key {key}")
    if kind == "blocks":
        data["blocks"] = draw(st.sampled_from([[], "two", 2, None, [data["blocks"][0]] * 9]))
        return Case(data, "blocks", f"{base}: blocks = {config_module.short(data['blocks'])}")
    if kind == "block key":
        data["blocks"][b][draw(KEY_NAMES.filter(lambda n: n not in ("layers", "growth_rate")))] = [1, 2]
        return Case(data, f"blocks[{b}]", f"{base}: unknown key in blocks[{b}]")
    data["name"] = draw(NOT_A_STRING)
    return Case(data, "name", f"{base}: name = {data['name']!r}")


def shipped_architecture() -> dict[str, Any]:
    return yaml.safe_load(GOOD_ARCH.read_text())


ARCH_INTS = {"in_channels": 64, "num_classes": 100_000, "input_size": 4096, "stem_channels": 4096}
ARCH_INTS["bottleneck_width"] = 64
ARCH = "nas-architecture/1"


@st.composite
def architecture_cases(draw: Callable) -> Case:
    """The shipped example architecture broken at one key."""
    data = shipped_architecture()
    b = draw(st.integers(0, len(data["blocks"]) - 1))
    block = data["blocks"][b]
    kind = draw(
        st.sampled_from(
            ["fixed"] * 3 + ["compression", "layers", "growth", "shortcuts", "stale", "lr", "format", "provenance"]
            + ["missing", "unknown", "blocks", "block", "too small", "no channels"]
        )
    )  # fmt: skip
    if kind == "fixed":
        key = draw(st.sampled_from(sorted(ARCH_INTS)))
        data[key] = draw(bad_positive_int(ARCH_INTS[key]))
        return Case(data, key, f"{key} = {config_module.short(data[key])}")
    if kind == "compression":
        data["compression"] = draw(BAD_COMPRESSION)
        return Case(data, "compression", f"compression = {data['compression']!r}")
    if kind == "layers":
        block["layers"] = draw(bad_positive_int(200))
        return Case(data, f"blocks[{b}].layers", f"blocks[{b}].layers = {config_module.short(block['layers'])}")
    if kind == "growth":
        block["growth_rate"] = draw(bad_positive_int(4096))
        return Case(data, f"blocks[{b}].growth_rate", f"blocks[{b}].growth_rate")
    if kind == "shortcuts":
        bits = block["shortcuts"]
        block["shortcuts"] = draw(
            st.one_of(
                st.sampled_from([bits[:-1], bits + "1", "", int(bits) if bits.strip("0") else 0, None, list(bits)]),
                st.text(alphabet="012 x", min_size=len(bits), max_size=len(bits)).filter(lambda s: set(s) - {"0", "1"}),
            )
        )
        return Case(data, f"blocks[{b}].shortcuts", f"blocks[{b}].shortcuts = {block['shortcuts']!r}")
    if kind == "stale":  # layers changed, shortcut string left at the old length
        block["layers"] = draw(st.integers(1, 200).filter(lambda n: n != block["layers"]))
        return Case(data, f"blocks[{b}].shortcuts", f"blocks[{b}].layers {block['layers']} with old shortcuts")
    if kind == "lr":
        data["learning_rate"] = draw(BAD_LR)
        return Case(data, "learning_rate", f"learning_rate = {data['learning_rate']!r}")
    if kind == "format":
        data["format"] = draw(st.sampled_from(["nas-architecture/2", "nas-architecture", 1, None, "", [ARCH]]))
        return Case(data, "format", f"format = {data['format']!r}")
    if kind == "provenance":
        data["provenance"] = draw(st.sampled_from([5, "run-1", [1, 2], 1.5, True]))
        return Case(data, "provenance", f"provenance = {data['provenance']!r}")
    if kind == "missing":
        key = draw(st.sampled_from([*ARCH_INTS, "compression", "blocks"]))
        del data[key]
        return Case(data, key, f"{key} missing")
    if kind == "unknown":
        key = draw(KEY_NAMES.filter(lambda n: n not in {"format", *ARCH_INTS, "compression", "blocks"}))
        key = key if key not in ("learning_rate", "provenance") else key + "_x"
        data[key] = 1
        return Case(data, key, f"unknown key {key}")
    if kind == "blocks":
        data["blocks"] = draw(st.sampled_from([[], "blocks", 3, None, {"layers": 3}]))
        return Case(data, "blocks", f"blocks = {data['blocks']!r}")
    if kind == "block":
        choice = draw(st.sampled_from(["not a mapping", "unknown key", "missing key"]))
        if choice == "not a mapping":
            data["blocks"][b] = draw(st.sampled_from([3, "3", [3, 12, "111111"], None]))
        elif choice == "unknown key":
            block[draw(KEY_NAMES.filter(lambda n: n not in ("layers", "growth_rate", "shortcuts")))] = 1
        else:
            del block[draw(st.sampled_from(["layers", "growth_rate", "shortcuts"]))]
        return Case(data, f"blocks[{b}]", f"blocks[{b}]: {choice}")
    if kind == "too small":  # 2 blocks halve the map once: an input of 1 px leaves nothing to pool
        data["input_size"] = 1
        return Case(data, "input_size", "input_size 1 with 2 blocks")
    data["compression"] = draw(st.sampled_from([0.001, 0.01, 1e-300]))
    return Case(data, "compression", f"compression {data['compression']} leaves 0 channels")


# --- files that are not a config at all -------------------------------------------------------------------------


def alias_bomb(levels: int = 9) -> str:
    """'Billion laughs': nine lists of nine references to the level below; 9**9 strings if expanded."""
    rows = ['&l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    rows += [f"&l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(rows) + "]"


def merge_bomb(levels: int = 9) -> str:
    """Merge keys (`<<`) over aliases of aliases: a mapping that would grow by 9x a level if copied."""
    rows = ["&m0 {k0: 1}"] + [
        f"&m{i} {{<<: [" + ",".join([f"*m{i - 1}"] * 9) + f"], k{i}: 1}}" for i in range(1, levels)
    ]
    return "[" + ", ".join(rows) + "]"


def python_tags(marker: Path) -> list[tuple[str, str]]:
    """Documents that would create `marker` if a loader honoured the `!!python/` tags."""
    return [
        ("object/apply os.system", f"name: !!python/object/apply:os.system ['touch {marker}']\n"),
        ("object/apply open", f"name: !!python/object/apply:builtins.open ['{marker}', 'w']\n"),
        ("object/apply subprocess", f"!!python/object/apply:subprocess.check_call [['touch', '{marker}']]\n"),
        ("object/new", f"seed: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n"),
        ("name tag", "name: !!python/name:os.system\n"),
        ("module tag", "name: !!python/module:os\n"),
        ("object tag", "name: !!python/object:argparse.Namespace {x: 1}\n"),
        (
            "nested apply",
            f"search:\n  pso:\n    swarm_size: !!python/object/apply:os.system ['touch {marker}']\n",
        ),
        ("local tag", f"name: !python/object/apply:os.system ['touch {marker}']\n"),
    ]


def garbage_documents(marker: Path) -> list[tuple[str, str | bytes, str]]:
    """(name, content, needle): files that are no mapping of the right kind at all."""
    deep = 1_000
    docs: list[tuple[str, str | bytes, str]] = [
        ("empty", "", "empty"),
        ("whitespace", "   \n\n\t\n", ""),
        ("comment only", "# nothing here\n", "empty"),
        ("null document", "~\n", "empty"),
        ("a scalar", "42\n", "mapping"),
        ("a string", "hello\n", "mapping"),
        ("a list", "- 1\n- 2\n", "mapping"),
        ("unclosed", "name: [unclosed\n", "YAML"),
        ("tab indent", "search:\n\tpso: 1\n", "YAML"),
        ("duplicate anchor alias", "name: *nothing\n", "YAML"),
        ("binary", bytes(range(256)), ""),
        ("NUL bytes", b"name: x\x00\x00\n", ""),
        ("invalid UTF-8", b"name: caf\xe9\n", "read"),
        ("UTF-16", "name: x\n".encode("utf-16"), ""),
        ("lone surrogate escape", b"name: \xed\xa0\x80\n", ""),
        ("deep lists", "name: " + "[" * deep + "]" * deep + "\n", "YAML"),
        ("deep mappings", "name: " + "{a: " * deep + "1" + "}" * deep + "\n", "YAML"),
        ("deep block mapping", "".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "x: 1\n", ""),
        ("huge integer", "seed: 1" + "0" * 5000 + "\n", ""),
        ("complex key", "? [a, b]\n: 1\n", "YAML"),
        ("alias bomb top", f"lol: {alias_bomb()}\n", "lol"),
        ("alias bomb in name", f"name: {alias_bomb()}\n", "name"),
        ("alias bomb in a number", f"search:\n  pso:\n    swarm_size: {alias_bomb()}\n", "search.pso.swarm_size"),
        ("alias bomb as a section", f"fitness: {alias_bomb()}\n", "fitness"),
        ("merge bomb", f"name: {merge_bomb()}\n", "name"),
        ("many keys", "".join(f"k{i}: {i}\n" for i in range(5_000)), "unknown key"),
        ("long string", "name: [" + "x" * 200_000 + "]\n", "name"),
    ]
    docs += [(f"python tag: {name}", text, "") for name, text in python_tags(marker)]
    return docs


# --- the tests --------------------------------------------------------------------------------------------------


def test_generated_bad_configs_are_refused_by_every_command(tmp_path, record_property):
    """Generated bad configs (wrong types, out of range, huge numbers, unknown keys, broken sections and rules)
    given to search, data summary, train and baseline."""
    folders, seen, calls = Folder(tmp_path), set(), 0

    @settings(max_examples=150, **HYPOTHESIS)
    @given(case=config_cases())
    def check(case: Case) -> None:
        nonlocal calls
        folder = folders.next()
        cfg = case.write(folder / "config.yaml")
        calls += config_commands(cfg, folder, case.needle)
        seen.add(cfg.read_bytes())

    check()
    record_property("tried", len(seen))
    record_property("calls", calls)
    assert len(seen) >= 120, f"only {len(seen)} distinct bad configs were generated"


def test_every_config_key_is_refused_with_its_path(tmp_path, record_property):
    """One wrong-typed value for every key of the config schema (so no key is left to chance)."""
    folders, tried = Folder(tmp_path), 0
    for leaf in LEAVES:
        tp = base_type(leaf.hint)
        value = [["nested"]] if tp in (int, float, bool) or typing.get_origin(tp) is Literal else {"a": 1}
        if typing.get_origin(tp) is dict:  # a mapping of another program's keys: the wrong type is a list
            value = ["not", "a", "mapping"]
        if tp is str:
            value = ["not", "a", "string"]
        data = shipped_config("smoke")
        set_path(data, leaf.path, value)
        folder = folders.next()
        config_commands(Case(data, leaf.path, "").write(folder / "config.yaml"), folder, leaf.path)
        tried += 1
    record_property("tried", tried)
    assert tried >= 60


def test_missing_encoding_and_bad_search_spaces_are_refused(tmp_path, record_property):
    """Generated bad search spaces (bad ranges, types, missing and unknown keys) given to inspect, and to search
    through a config's encoding; and a search config without an encoding."""
    folders, seen = Folder(tmp_path), set()

    @settings(max_examples=60, **HYPOTHESIS)
    @given(case=space_cases())
    def check(case: Case) -> None:
        folder = folders.next()
        space = case.write(folder / "space.yaml")
        assert_refused(nas("inspect", str(space)), case.needle)
        cfg = synthetic_config(folder)
        data = yaml.safe_load(cfg.read_text())
        data["encoding"] = str(space)
        cfg.write_text(yaml.safe_dump(data))
        run = folder / "run"
        line = assert_refused(nas("search", str(cfg), "--run-dir", str(run), "--workers", "0"), case.needle)
        assert "encoding" in line
        assert not run.exists()
        seen.add(space.read_bytes())

    check()
    data = shipped_config("smoke")
    del data["encoding"]
    folder = folders.next()
    cfg = Case(data, "", "").write(folder / "config.yaml")
    assert_refused(nas("search", str(cfg), "--run-dir", str(folder / "run"), "--workers", "0"), "encoding")
    # A valid space too deep for the data: 8 blocks halve an 8x8 digit below one pixel.
    deep = shipped_space("densenet_small")
    deep["blocks"] = deep["blocks"][:1] * 8
    data["encoding"] = str(Case(deep, "", "").write(folder / "deep.yaml"))
    cfg = Case(data, "", "").write(folder / "config.yaml")
    assert_refused(nas("search", str(cfg), "--run-dir", str(folder / "run"), "--workers", "0"), "encoding", "8 blocks")
    assert not (folder / "run").exists()
    record_property("tried", len(seen) + 2)
    assert len(seen) >= 45, f"only {len(seen)} distinct bad search spaces"


def test_generated_bad_architecture_files_are_refused(tmp_path, record_property):
    """Generated bad architecture files (fixed parts, blocks, shortcut strings, learning rate, format, keys)
    given to inspect and to train."""
    folders, seen = Folder(tmp_path), set()

    @settings(max_examples=90, **HYPOTHESIS)
    @given(case=architecture_cases())
    def check(case: Case) -> None:
        folder = folders.next()
        arch = case.write(folder / "architecture.yaml")
        assert_refused(nas("inspect", str(arch)), case.needle)
        save = folder / "saved"
        train = ("train", str(arch), "--config", str(DIGITS_CONFIG), "--epochs", "1", "--save", str(save))
        assert_refused(nas(*train), case.needle)
        assert not save.exists()
        seen.add(arch.read_bytes())

    check()
    record_property("tried", len(seen))
    assert len(seen) >= 70, f"only {len(seen)} distinct bad architecture files"


def test_garbage_files_bombs_and_python_tags(tmp_path, record_property):
    """Files that are not a config at all: empty, binary, invalid UTF-8, deep nesting, alias and merge bombs,
    `!!python/` tags with a payload; as a config (4 commands) and as an architecture file (inspect, train)."""
    marker = tmp_path / "EXECUTED"
    folders, tried = Folder(tmp_path), 0
    for name, content, needle in garbage_documents(marker):
        folder = folders.next()
        path = Case(content, needle, name).write(folder / "input.yaml")
        start, rss = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        config_commands(path, folder, needle, str(path))
        assert_refused(nas("inspect", str(path)), str(path))
        assert_refused(nas("train", str(path), "--config", str(DIGITS_CONFIG), "--epochs", "1"), str(path))
        seconds = time.monotonic() - start
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
        record_property(f"seconds {name}", round(seconds, 2))  # measured, not asserted: limits belong in benchmarks/
        assert grown_mb < 500, f"{name}: peak memory grew by {grown_mb:.0f} MB (an expanded bomb)"
        assert not marker.exists(), f"{name}: the payload ran"
        tried += 1
    record_property("tried", tried)


def test_generated_binary_garbage(tmp_path, record_property):
    """Random bytes (hypothesis) as a config and as an architecture file."""
    folders, seen = Folder(tmp_path), set()

    @settings(max_examples=40, **HYPOTHESIS)
    @given(blob=st.one_of(st.binary(min_size=1, max_size=400), st.binary(max_size=50).map(lambda b: b"\xff" + b)))
    def check(blob: bytes) -> None:
        folder = folders.next()
        path = folder / "input.yaml"
        path.write_bytes(blob)
        expected_valid = safe_mapping(blob)
        if expected_valid is not None:  # random bytes that happen to be a YAML mapping: an unknown key somewhere
            return
        config_commands(path, folder, str(path))
        assert_refused(nas("inspect", str(path)), str(path))
        seen.add(blob)

    check()
    record_property("tried", len(seen))
    assert len(seen) >= 30


def safe_mapping(blob: bytes) -> dict | None:
    """The blob as a YAML mapping, if it is one (then it is refused for its keys, not its bytes)."""
    try:
        data = yaml.safe_load(blob.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def test_bad_config_in_a_run_directory_is_refused_by_export_and_report(tmp_path, record_property):
    """A run directory whose config.yaml was replaced by a bad one, given to export and report."""
    source = tmp_path / "source"
    source.mkdir()
    cfg = synthetic_config(source, evaluations=8)
    run = tmp_path / "run"
    finished = nas("search", str(cfg), "--run-dir", str(run), "--workers", "0")
    assert finished.code == 0, finished.stderr
    good = (run / "config.yaml").read_bytes()
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    marker = tmp_path / "EXECUTED"
    cases = [
        ("wrong type", "search:\n  pso:\n    swarm_size: many\n", "search.pso.swarm_size"),
        ("out of range", "fitness:\n  lr: -1\n", "fitness.lr"),
        ("unknown key", "surprise: 1\n", "surprise"),
        ("huge", "seed: " + str(10**100) + "\n", "seed"),
        ("empty", "", "empty"),
        ("binary", "\x00\x01\x02", ""),
        ("python tag", f"name: !!python/object/apply:os.system ['touch {marker}']\n", "YAML"),
        ("alias bomb", f"name: {alias_bomb()}\n", "name"),
    ]
    tried = 0
    for name, text, needle in cases:
        (run / "config.yaml").write_text(text, encoding="utf-8")
        assert_refused(nas("export", str(run), "--out", str(tmp_path / f"export-{tried}")), needle)
        assert_refused(nas("report", str(run)), needle)
        assert not (tmp_path / f"export-{tried}").exists() and not (run / "report").exists(), name
        tried += 1
    assert not marker.exists()
    (run / "config.yaml").write_bytes(good)
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before, "a refused export or report changed the run directory"
    record_property("tried", tried)


def test_real_process_prints_no_traceback(tmp_path, record_property):
    """A sample of the bad inputs through the real `nas` process (what a user sees)."""
    marker = tmp_path / "EXECUTED"
    arch = shipped_architecture()
    arch["blocks"][0]["shortcuts"] = "11111"
    config = shipped_config("smoke")
    config["search"]["pso"]["swarm_size"] = "8"
    huge = shipped_config("digits_quick")
    huge["fitness"]["lr"] = 10**400
    space = shipped_space("densenet_small")
    space["blocks"][1]["layers"] = [6, 1]
    files = {
        "arch.yaml": Case(arch, "", ""),
        "config.yaml": Case(config, "", ""),
        "huge.yaml": Case(huge, "", ""),
        "space.yaml": Case(space, "", ""),
        "tag.yaml": Case(f"name: !!python/object/apply:os.system ['touch {marker}']\n", "", ""),
        "bomb.yaml": Case(f"name: {alias_bomb()}\n", "", ""),
        "binary.yaml": Case(bytes(range(256)), "", ""),
        "mixed-keys.yaml": Case("format: nas-architecture/1\n1: 2\nextra: 3\n", "", ""),
    }
    for name, case in files.items():
        case.write(tmp_path / name)
    t = str(tmp_path)
    calls = [
        (("inspect", f"{t}/arch.yaml"), "blocks[0].shortcuts"),
        (("inspect", f"{t}/space.yaml"), "blocks[1].layers"),
        (("inspect", f"{t}/mixed-keys.yaml"), "unknown key"),
        (("inspect", f"{t}/binary.yaml"), "binary.yaml"),
        (("search", f"{t}/config.yaml", "--run-dir", f"{t}/run", "--workers", "0"), "search.pso.swarm_size"),
        (("search", f"{t}/tag.yaml", "--run-dir", f"{t}/run"), "not valid YAML"),
        (("data", "summary", f"{t}/huge.yaml"), "fitness.lr"),
        (("data", "summary", f"{t}/bomb.yaml"), "name"),
        (("train", f"{t}/arch.yaml", "--config", str(DIGITS_CONFIG)), "blocks[0].shortcuts"),
        (("baseline", f"{t}/config.yaml", "--run-dir", f"{t}/baseline"), "search.pso.swarm_size"),
    ]
    for argv, needle in calls:
        out = run_nas(*argv, timeout=120)
        assert out.returncode == 2, (argv, out.returncode, out.stderr[-2000:])
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in out.stderr, (argv, out.stderr[-2000:])
        assert needle in lines[0], (argv, lines[0])
        assert not out.stdout.strip()
    assert not marker.exists() and not (tmp_path / "run").exists() and not (tmp_path / "baseline").exists()
    record_property("tried", len(calls))


def test_a_bad_or_unreachable_ray_address_leaves_no_run_directory(tmp_path, record_property):
    """`nas search --ray-address` malformed (http://, a port past 65535, words) or unreachable (nothing listens):
    refused in one line naming ray.address, no run directory, and the same command refused the same way again
    (not as "not empty")."""
    cfg = synthetic_config(tmp_path, evaluations=4)
    addresses = ["http://x", "127.0.0.1:99999", "not an address", "ray://127.0.0.1:1", "127.0.0.1:1"]
    for i, address in enumerate(addresses):
        run = tmp_path / f"run{i}"
        for _ in range(2):
            out = nas("search", str(cfg), "--run-dir", str(run), "--workers", "2", "--ray-address", address)
            assert_refused(out, "ray.address")
            assert not run.exists(), f"{address}: a run directory was left behind"
    record_property("tried", len(addresses))


def test_a_seed_out_of_range_is_refused_before_anything_runs(tmp_path, record_property):
    """`--seed` past 2**63 - 1 (the config's own range) to search and train: exit 2 naming --seed, no run made;
    the largest allowed seed runs, and its run resumes and exports."""
    cfg = synthetic_config(tmp_path, evaluations=4)
    for i, seed in enumerate([2**63, 2**64, 10**30]):
        run = tmp_path / f"run{i}"
        assert_refused(nas("search", str(cfg), "--run-dir", str(run), "--workers", "0", "--seed", str(seed)), "--seed")
        assert not run.exists()
        assert_refused(nas("train", str(GOOD_ARCH), "--config", str(DIGITS_CONFIG), "--seed", str(seed)), "--seed")
    run = tmp_path / "largest"
    out = nas("search", str(cfg), "--run-dir", str(run), "--workers", "0", "--seed", str(2**63 - 1))
    assert out.code == 0, out.stderr[-2000:]
    assert nas("resume", str(run), "--workers", "0").code == 0
    assert nas("export", str(run), "--out", str(tmp_path / "export")).code == 0
    record_property("tried", 7)


def test_an_unsafe_config_name_is_refused(tmp_path, monkeypatch, record_property):
    """`name` values that are not one safe folder name (.., a path up or absolute, separators, a newline, NUL,
    other control characters, blank, surrounding spaces, 1,000 characters): refused naming `name`, and no folder
    made anywhere, the default run directory (`runs/<name>-<time>`) included."""
    monkeypatch.chdir(tmp_path)
    names = ["..", ".", "../../escaped", "/tmp/absolute", "a/b", "a\\\\b", "c:drive", "line\nbreak", "nul\x00",
             "bell\x07", "", "   ", " padded", "x" * 1000]  # fmt: skip
    tried = 0
    for name in names:
        data = yaml.safe_load(synthetic_config(tmp_path, evaluations=4).read_text())
        data["name"] = name
        cfg = tmp_path / "named.yaml"
        cfg.write_text(yaml.safe_dump(data))
        before = sorted(p.name for p in tmp_path.iterdir())
        assert_refused(nas("search", str(cfg), "--workers", "0"), "name")
        assert sorted(p.name for p in tmp_path.iterdir()) == before, f"{name!r}: a folder was made"
        tried += 1
    data["name"] = "fine-name_1.2"
    cfg.write_text(yaml.safe_dump(data))
    assert nas("search", str(cfg), "--workers", "0").code == 0
    assert [p.name for p in (tmp_path / "runs").iterdir()][0].startswith("fine-name_1.2-")
    record_property("tried", tried)


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels (what a decompression bomb declares) and holds none."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def small_tree(root: Path) -> Path:
    import io

    from PIL import Image

    for split in ("train", "test"):
        for c, name in enumerate(("cat", "dog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                buffer = io.BytesIO()
                Image.new("RGB", (8, 8), (40 * c + i, 0, 0)).save(buffer, format="PNG")
                (folder / f"{i}.png").write_bytes(buffer.getvalue())
    return root


def test_broken_links_decompression_bombs_and_a_folder_for_the_log_are_one_line(tmp_path, record_property):
    """An imagefolder tree holding a dangling symlink, a symlink to itself, or a PNG declaring 400 megapixels
    (given to data summary and search); a run whose evaluations.jsonl is a folder (given to resume, export and
    report): exit 2 with one line naming the file, no traceback."""
    import os

    faults = {
        "dangling link": lambda folder: os.symlink(folder / "nowhere.png", folder / "dangling.png"),
        "self link": lambda folder: os.symlink(folder / "loop.png", folder / "loop.png"),
        "decompression bomb": lambda folder: (folder / "bomb.png").write_bytes(png_header(20_000, 20_000)),
    }
    needles = {"dangling link": "dangling.png", "self link": "loop.png", "decompression bomb": "bomb.png"}
    tried = 0
    for i, (name, make) in enumerate(faults.items()):
        tree = small_tree(tmp_path / f"tree{i}")
        make(tree / "train" / "cat")
        dataset = {"name": "imagefolder", "root": str(tree), "cache_dir": str(tmp_path / "cache")}
        cfg = synthetic_config(tree, evaluations=4, dataset=dataset, fitness={"objective": "train", "epochs": 1})
        run = tmp_path / f"run{i}"
        assert_refused(nas("data", "summary", str(cfg)), needles[name])
        assert_refused(nas("search", str(cfg), "--run-dir", str(run), "--workers", "0"), needles[name])
        assert not run.exists()
        tried += 2
    cfg = synthetic_config(tmp_path, evaluations=4)
    run = tmp_path / "run"
    assert nas("search", str(cfg), "--run-dir", str(run), "--workers", "0", "--max-evaluations", "2").code == 0
    (run / "evaluations.jsonl").unlink()
    (run / "evaluations.jsonl").mkdir()
    for argv in (("resume", str(run), "--workers", "0"), ("export", str(run), "--out", str(tmp_path / "e")),
                 ("report", str(run))):  # fmt: skip
        assert_refused(nas(*argv), "evaluations.jsonl")
        tried += 1
    record_property("tried", tried)


def test_duplicate_keys_are_refused_with_the_key_path_and_both_lines(tmp_path, record_property):
    """A key given twice (top level, nested, inside a list item, in flow style) in configs, search spaces and
    architecture files, given to every command that reads them: refused with the key path and both lines."""
    config = (ROOT / "search_configs/smoke.yaml").read_text()
    space = (ROOT / "encodings/densenet_small.yaml").read_text()
    arch = GOOD_ARCH.read_text()
    lines = len(config.splitlines())
    cases = [
        ("config", config + "seed: 7\n", "seed", (config.splitlines().index("seed: 0") + 1, lines + 1)),
        ("config", config + "search:\n  strategy: ga\n", "search", None),
        ("config", config.replace("  budget:\n", "  budget:\n    evaluations: 3\n", 1), "search.budget.evaluations",
         None),
        ("config", config.replace("dataset:\n", "dataset:\n  name: digits\n", 1), "dataset.name", None),
        ("space", space + "stem_channels: 64\n", "stem_channels", None),
        ("space", space.replace("{layers: ", "{layers: 3, layers: ", 1), "blocks[0].layers", None),
        ("arch", arch + "compression: 0.5\n", "compression", None),
        ("arch", arch.replace("{layers: ", "{growth_rate: 4, layers: ", 1), "blocks[0]", None),
    ]  # fmt: skip
    tried = 0
    for i, (kind, text, key, where) in enumerate(cases):
        path = tmp_path / f"dup{i}.yaml"
        path.write_text(text)
        calls = {
            "config": [("data", "summary", str(path)), ("search", str(path), "--run-dir", str(tmp_path / "run"))],
            "space": [("inspect", str(path))],
            "arch": [("inspect", str(path)), ("train", str(path), "--config", str(DIGITS_CONFIG))],
        }[kind]
        if kind == "space":
            (tmp_path / f"s{i}").mkdir()
            cfg = synthetic_config(tmp_path / f"s{i}")
            data = yaml.safe_load(cfg.read_text())
            data["encoding"] = str(path)
            cfg.write_text(yaml.safe_dump(data))
            calls.append(("search", str(cfg), "--run-dir", str(tmp_path / "run"), "--workers", "0"))
        for argv in calls:
            line = assert_refused(nas(*argv), key, "duplicate key", str(path))
            if where is not None:
                assert f"lines {where[0]} and {where[1]}" in line, line
            tried += 1
        assert not (tmp_path / "run").exists()
    record_property("tried", tried)


def test_a_huge_value_is_never_echoed_whole(tmp_path, record_property):
    """A 1,000,000-character dataset.name; a 100,000-character string at every string config key (and a sample of
    the others), as an unknown key's
    name, in an architecture file, and as a flag's value: each error line stays short (at most 1,000
    characters) and holds no long run of the value."""
    huge = "x" * 100_000
    folders, tried = Folder(tmp_path), 0

    def check(out: Outcome, what: str) -> None:
        assert out.exception is None, (what, type(out.exception).__name__)
        for line in out.stderr.splitlines():
            assert len(line) <= 1100 and "x" * 200 not in line, (what, len(line), line[:300])

    textual = [leaf for leaf in LEAVES if base_type(leaf.hint) is str or typing.get_origin(base_type(leaf.hint))
               is Literal]  # fmt: skip
    for leaf in [*textual, *LEAVES[:: max(1, len(LEAVES) // 5)]]:  # every string key, and a sample of the rest
        data = shipped_config("smoke")
        set_path(data, leaf.path, huge)
        cfg = Case(data, leaf.path, "").write(folders.next() / "config.yaml")
        check(nas("data", "summary", str(cfg)), leaf.path)
        tried += 1
    for data in ({**shipped_config("smoke"), huge: 1}, {**shipped_config("smoke"), "search": {huge: 1}}):
        check(nas("data", "summary", str(Case(data, "", "").write(folders.next() / "config.yaml"))), "unknown key")
        tried += 1
    arch = shipped_architecture()
    for change in ({"format": huge}, {"stem_channels": huge}, {huge: 1}):
        path = Case({**arch, **change}, "", "").write(folders.next() / "arch.yaml")
        check(nas("inspect", str(path)), str(change)[:40])
        tried += 1
    check(nas("search", "config.yaml", "--workers", "1" + "0" * 100_000), "--workers")
    data = shipped_config("smoke")
    data["dataset"]["name"] = "x" * 1_000_000
    check(nas("data", "summary", str(Case(data, "", "").write(folders.next() / "config.yaml"))), "dataset.name")
    record_property("tried", tried + 2)


# --- numbers spelled otherwise than in plain decimal, and empty or misdirected paths -----------------------------


INT_LEAVES = [leaf for leaf in LEAVES if base_type(leaf.hint) is int]
FLOAT_LEAVES = [leaf for leaf in LEAVES if base_type(leaf.hint) is float]
MARKER = "SPELLINGGOESHERE"
MAX_DIGITS = 4300  # CPython's default limit of int(): one more digit and it raises ValueError


def in_range(meta: typing.Mapping[str, Any]) -> st.SearchStrategy:
    """An integer the field accepts, so that only its spelling can be what is refused."""
    low, high = meta.get("low"), meta.get("high")
    low = 0 if low is None else int(low) + (1 if meta.get("open_low") else 0)
    high = low + 10**6 if high is None else min(int(high), low + 10**6)
    return st.integers(low, high)


def int_spellings(n: int) -> st.SearchStrategy:
    """YAML 1.1 (and `int()`) spellings of `n` other than plain decimal: each once read as a number."""
    text = str(n)
    return st.sampled_from(
        [f"+{n}", f"{text[0]}_{text[1:]}" if len(text) > 1 else f"0_{n}", f"0{n:o}", f"0o{n:o}", f"0x{n:X}",
         f"0b{n:b}", f"{max(1, n // 60)}:{n % 60:02d}", f"!!int 0x{n:X}", f"'{n}'", "٣", "５"]
    )  # fmt: skip


HUGE_INTS = st.integers(MAX_DIGITS + 1, MAX_DIGITS + 2000).map(lambda digits: "9" * digits)
FLOAT_SPELLINGS = st.sampled_from(["1_0.5", "0.000_1", "1:30.5", "!!float 1_0.0", "!!float 1:30", "!!float x"])


@st.composite
def spelled_numbers(draw: Callable) -> tuple[str, str]:
    """(key path, raw YAML scalar): a number at a config key spelled in a way no field takes."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(FLOAT_LEAVES)).path, draw(FLOAT_SPELLINGS)
    leaf = draw(st.sampled_from(INT_LEAVES))
    spelling = draw(st.one_of(in_range(leaf.meta).flatmap(int_spellings), HUGE_INTS, st.just("-" + "1" * 5000)))
    return leaf.path, spelling


def spelled_config(path: str, spelling: str, folder: Path) -> Path:
    """The smoke config with `spelling` written verbatim (not quoted by a YAML dumper) at key `path`."""
    data = shipped_config("smoke")
    set_path(data, path, MARKER)
    text = yaml.safe_dump(data, sort_keys=False)
    assert text.count(MARKER) == 1
    cfg = folder / "config.yaml"
    cfg.write_text(text.replace(MARKER, spelling), encoding="utf-8")
    return cfg


def test_numbers_not_in_plain_decimal_are_refused_at_every_integer_key(tmp_path, record_property):
    """Every integer key of the config, then generated (key, spelling) pairs: base 60 (`1:30`), octal (`017`,
    `0o17`), hex, binary, underscores, a `+` sign, an explicit `!!int 0x1F`, a quoted number, other scripts'
    digits, integers of 4,301 to 6,300 digits (past Python's int() limit); and float keys given `1_0.5`, `1:30.5`
    or a bad `!!float`: each refused by every command that reads a config, naming the key."""
    folders, seen = Folder(tmp_path), set()
    for i, leaf in enumerate(INT_LEAVES):  # no integer key left to chance: each with one spelling in turn
        low = int(leaf.meta.get("low") or 0) + (1 if leaf.meta.get("open_low") else 0)
        spellings = [f"+{low + 1}", f"{low + 1}_0", "1:30", f"0{low + 8:o}", f"0x{low + 1:X}", "1" + "0" * 5000]
        spelling = spellings[i % len(spellings)]
        folder = folders.next()
        config_commands(spelled_config(leaf.path, spelling, folder), folder, leaf.path)
        seen.add((leaf.path, spelling))

    @settings(max_examples=80, **HYPOTHESIS)
    @given(case=spelled_numbers())
    def check(case: tuple[str, str]) -> None:
        path, spelling = case
        folder = folders.next()
        config_commands(spelled_config(path, spelling, folder), folder, path)
        seen.add(case)

    check()
    record_property("tried", len(seen))
    assert len(seen) >= len(INT_LEAVES) + 60, len(seen)


def test_plain_decimal_numbers_still_load_as_numbers(record_property):
    """Generated plain decimal integers (either sign, up to 4,300 digits, padded with spaces) and floats, loaded
    by the same reader: each is still a number, so the refusals above take nothing written as a plain number."""
    from nas.yamlfile import load_unique

    seen = set()

    @settings(max_examples=200, **HYPOTHESIS)
    @given(n=st.one_of(st.integers(-(10**30), 10**30), st.just(10**MAX_DIGITS - 1)), pad=st.sampled_from(["", " "]))
    def check(n: int, pad: str) -> None:
        assert load_unique(f"k: {pad}{n}{pad}\n", "test") == {"k": n}
        assert load_unique(f"k: {n}.5\n", "test") == {"k": float(f"{n}.5")}
        assert load_unique(f"k: [{n}.5e+3]\n", "test") == {"k": [float(f"{n}.5e3")]}
        seen.add(n)

    check()
    record_property("tried", len(seen))


INT_FLAGS = [  # (command line up to the flag, flag, low, high)
    (("search", "CFG", "--run-dir", "RUN"), "--seed", 0, 2**63 - 1),
    (("search", "CFG", "--run-dir", "RUN"), "--workers", 0, 100_000),
    (("search", "CFG", "--run-dir", "RUN"), "--max-evaluations", 1, 10_000_000),
    (("resume", "RUN"), "--workers", 0, 100_000),
    (("resume", "RUN"), "--max-evaluations", 1, 10_000_000),
    (("train", "ARCH", "--config", "CFG"), "--epochs", 1, 10_000),
    (("train", "ARCH", "--config", "CFG"), "--seed", 0, 2**63 - 1),
    (("export", "RUN"), "--rank", 1, 10**9),
    (("baseline", "CFG", "--run-dir", "RUN"), "--epochs", 1, 1000),
    (("predict", "RUN", "CFG"), "--batch-size", 1, 65_536),
]


def flag_spellings(low: int, high: int) -> st.SearchStrategy:
    """What `int()` accepts but a count or a seed must not be, and numbers just past the flag's range."""
    n = st.integers(low, min(high, low + 10**6))
    return st.one_of(
        n.map(lambda v: f"+{v}"), n.map(lambda v: f" {v}"), n.map(lambda v: f"{v}\n"), n.map(lambda v: f"0x{v:x}"),
        n.filter(lambda v: v >= 10).map(lambda v: f"{str(v)[0]}_{str(v)[1:]}"),
        n.map(lambda v: "".join(chr(0x0660 + int(d)) for d in str(v))),  # Arabic-Indic digits
        n.map(lambda v: "".join(chr(0xFF10 + int(d)) for d in str(v))),  # full-width digits
        st.sampled_from(["", "1:30", "1e3", "5.0", "0o17", "0b1", "nan", "-", "1 0", "١_٠", "1" + "0" * 5000]),
        st.sampled_from([str(low - 1), str(high + 1), str(10**100), "-" + "9" * 5000]),
    )  # fmt: skip


def test_integer_flags_take_plain_decimal_numbers_in_range_only(tmp_path, record_property):
    """Generated spellings at every integer flag of every command (`--seed`, `--workers`, `--max-evaluations`,
    `--epochs`, `--rank`, `--batch-size`): a sign, underscores, hex, octal, other scripts' digits (`--seed ٣`),
    spaces, a newline, 5,000 digits, one past either end of the range. Each is refused in one line naming the
    flag, before anything runs; a plain decimal in range (leading zeros included) parses to its value."""
    from nas.cli import build_parser

    cfg, run = synthetic_config(tmp_path, evaluations=4), tmp_path / "run"
    names = {"CFG": str(cfg), "RUN": str(run), "ARCH": str(GOOD_ARCH)}
    tried = 0

    @settings(max_examples=30, **HYPOTHESIS)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        nonlocal tried
        for prefix, flag, low, high in INT_FLAGS:
            argv = [names.get(a, a) for a in prefix]
            spelling = data.draw(flag_spellings(low, high), label=flag)
            line = assert_refused(nas(*argv, f"{flag}={spelling}"), flag)
            assert len(line) <= 300, line[:400]
            value = data.draw(st.integers(low, high), label=f"{flag} valid")
            parsed = build_parser().parse_args([*argv, flag, f"00{value}"])
            assert getattr(parsed, flag.lstrip("-").replace("-", "_")) == value
            tried += 1

    check()
    assert not run.exists()
    record_property("tried", tried)


PATH_CALLS = [  # (argv with '' in one path or address, what the error line names)
    (("search", "CFG", "--run-dir", ""), "--run-dir"),
    (("search", "", "--run-dir", "RUN"), "config"),
    (("search", "CFG", "--run-dir", "RUN", "--ray-address", ""), "--ray-address"),
    (("resume", ""), "run_dir"),
    (("resume", "RUN", "--ray-address", ""), "--ray-address"),
    (("export", "RUN", "--out", ""), "--out"),
    (("export", ""), "run_dir"),
    (("report", ""), "run_dir"),
    (("train", "ARCH", "--config", "CFG", "--save", ""), "--save"),
    (("train", "", "--config", "CFG"), "architecture"),
    (("train", "ARCH", "--config", ""), "--config"),
    (("baseline", "CFG", "--run-dir", ""), "--run-dir"),
    (("data", "summary", ""), "config"),
    (("inspect", ""), "file"),
    (("predict", "", "CFG"), "model_dir"),
    (("predict", "RUN", ""), "INPUT"),
    (("predict", "RUN", "CFG", "--out", ""), "--out"),
]


def test_an_empty_path_is_a_bad_flag(tmp_path, monkeypatch, record_property):
    """'' as every path and address argument (`--run-dir ''`, `--out ''`, `--save ''`, `nas resume ''`, a config,
    a model folder, an input, `--ray-address ''`): refused in one line naming the argument, never taken as
    "the default" (the current folder, runs/<name>-<time>, RUN_DIR/export, no --save) and nothing written."""
    monkeypatch.chdir(tmp_path)
    cfg = synthetic_config(tmp_path, evaluations=4)
    run = tmp_path / "run"
    assert nas("search", str(cfg), "--run-dir", str(run), "--workers", "0").code == 0
    names = {"CFG": str(cfg), "RUN": str(run), "ARCH": str(GOOD_ARCH)}
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for argv, needle in PATH_CALLS:
        assert_refused(nas(*[names.get(a, a) for a in argv]), needle, "must not be empty")
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, f"{argv}: something was made"
    record_property("tried", len(PATH_CALLS))


def test_a_run_directory_that_is_a_file_is_called_a_file(tmp_path, record_property):
    """`nas search --run-dir FILE` and `nas resume FILE` (a config, an empty file, a symlink to a file): refused
    in one line saying it is a file (not "not empty; use nas resume", which then fails too), the file untouched."""
    cfg = synthetic_config(tmp_path, evaluations=4)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    link = tmp_path / "link"
    link.symlink_to(cfg)
    tried = 0
    for file in (cfg, empty, link):
        content = file.read_bytes()
        line = assert_refused(nas("search", str(cfg), "--run-dir", str(file), "--workers", "0"), str(file), "a file")
        assert "nas resume" not in line, line
        assert_refused(nas("resume", str(file), "--workers", "0"), str(file), "a file")
        assert file.read_bytes() == content
        tried += 2
    record_property("tried", tried)


# --- nas predict: a hand-edited preprocess.json -------------------------------------------------------------------


_models: dict[str, Path] = {}


def digits_model(tmp_path_factory: Any) -> Path:
    """A real tiny digits model folder (`nas train --save --onnx`, 1 epoch on 30% of the digits), made once per
    session in a separate process, so that this process's peak memory stays that of predict alone."""
    from reliability_runs import digits_config

    if "digits" not in _models:
        folder = tmp_path_factory.mktemp("predict_model")
        save = folder / "model"
        out = run_nas("train", str(GOOD_ARCH), "--config", str(digits_config(folder)), "--epochs", "1", "--save",
                      str(save), "--onnx")  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        _models["digits"] = save
    return _models["digits"]


NOT_TEXT = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.lists(st.just(1),
                     max_size=2), st.just({"a": 1}))  # fmt: skip
NOT_INT = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=3), st.just([8]))
NOT_NUMBER = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.just([1.0]), st.just({"a": 1}),
                       st.sampled_from([math.nan, math.inf, -math.inf]))  # fmt: skip
BAD_TEXT = st.one_of(NOT_TEXT, st.just(""), st.just("x" * 10_001), st.sampled_from(["a\nb", "a\x00b", "a\u2028b"]))


def bad_numbers(length: int, positive: bool) -> st.SearchStrategy:
    """A per-channel list that is wrong: not a list, the wrong length, or one bad value."""
    bad_value = st.one_of(NOT_NUMBER, st.sampled_from([0.0, -1.0, -1e-9])) if positive else NOT_NUMBER
    return st.one_of(
        NOT_TEXT.filter(lambda v: not isinstance(v, list)),
        st.lists(st.floats(0.5, 2), min_size=0, max_size=5).filter(lambda v: len(v) != length),
        st.tuples(st.integers(0, length - 1), bad_value).map(
            lambda iv: [iv[1] if i == iv[0] else 1.0 for i in range(length)]
        ),  # fmt: skip
    )


def bad_class_names(good: list[str]) -> st.SearchStrategy:
    """Not a list, empty, a non-string or empty or control-character name, a repeated name, or a count the
    model does not give."""
    at = st.integers(0, len(good) - 1)
    return st.one_of(
        NOT_TEXT.filter(lambda v: not isinstance(v, list)),
        st.just([]),
        st.tuples(at, BAD_TEXT.filter(lambda v: v != "x" * 10_001)).map(
            lambda iv: [iv[1] if i == iv[0] else n for i, n in enumerate(good)]
        ),  # fmt: skip
        st.tuples(at, at)
        .filter(lambda ij: ij[0] != ij[1])
        .map(lambda ij: [good[ij[0]] if i == ij[1] else n for i, n in enumerate(good)]),  # fmt: skip
        st.integers(1, 30).filter(lambda k: k != len(good)).map(lambda k: [f"c{i}" for i in range(k)]),
    )


@st.composite
def preprocess_cases(draw: Callable, good: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A valid preprocess.json broken at one field, and the field the error line must name."""
    doc = {k: (list(v) if isinstance(v, list) else v) for k, v in good.items()}
    channels = good["in_channels"]
    field = draw(st.sampled_from([*good, "extra key", "missing key"]))
    if field == "extra key":
        key = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in good and k.isprintable() and
                                                           "'" not in k and "\\" not in k))  # fmt: skip
        doc[key] = draw(st.integers())
        return doc, key
    if field == "missing key":
        key = draw(st.sampled_from([k for k in good if k != "format" and k not in PREPROCESS_OPTIONAL]))
        del doc[key]
        return doc, key
    values: dict[str, st.SearchStrategy] = {
        "format": st.one_of(NOT_TEXT, st.sampled_from(["", "nas-preprocess/2", "nas-preprocess/0", "nas-arch/1"])),
        "dataset": st.one_of(BAD_TEXT, st.sampled_from(["a b", "x" * 65, "../x", "d/x"])),
        "class_names": bad_class_names(good["class_names"]),
        "channel_order": st.one_of(
            NOT_TEXT.filter(lambda v: not isinstance(v, list)),
            st.just([]),
            st.just(["a", "b"]),
            BAD_TEXT.map(lambda v: [v]),
        ),  # fmt: skip
        "input_size": st.one_of(
            NOT_INT,
            st.integers(max_value=0),
            st.integers(min_value=4097),
            st.sampled_from([100_000, 10**30, 16, 4096, 2]),
        ),  # fmt: skip
        "in_channels": st.one_of(NOT_INT, st.integers(max_value=0), st.integers(min_value=65), st.just(3)),
        "input_dtype": st.one_of(NOT_TEXT, st.sampled_from(["object", "float64", "", "uint8", "int8"])),
        "input_range": st.one_of(
            st.sampled_from(["x", 1, [1.0], [0.0, 1.0, 2.0], [5.0, 1.0], [1.0, 1.0]]),
            st.tuples(NOT_NUMBER, st.floats(0, 1)).map(list),
        ),  # fmt: skip
        "resize": st.one_of(
            NOT_INT.filter(lambda v: v is not None), st.integers(max_value=0), st.integers(min_value=4097)
        ),  # fmt: skip
        "mean": bad_numbers(channels, positive=False),
        "std": bad_numbers(channels, positive=True),
        "scale": st.one_of(NOT_NUMBER, st.floats(max_value=0)),
        "round": st.one_of(st.none(), st.integers(0, 1), st.text(max_size=4), st.just([True])),
        "normalisation": BAD_TEXT,
        "plate_statistics": st.sampled_from(
            [
                1,
                "x",
                [],
                {"P1": 1},
                {"P1": {"mean": [0.0]}},
                {"P1": {"mean": [0.0], "std": [0.0]}},
                {"P1": {"mean": [0.0, 1.0], "std": [1.0]}},
                {"P1": {"mean": [0.0], "std": [1.0], "x": 1}},
                {"": {"mean": [0.0], "std": [1.0]}},
            ]
        ),  # fmt: skip
        "evonas_version": BAD_TEXT,
        "weights": st.sampled_from(
            [
                1,
                "x",
                [],
                {"source": "magic", "epochs": 1},
                {"source": "search", "epochs": -1},
                {"source": "search", "epochs": 1, "val_accuracy": 2.0},
                {"source": "search", "epochs": 1, "bogus": 1},
            ]
        ),  # fmt: skip
        "resize_method": BAD_TEXT,
        "notes": st.one_of(
            NOT_TEXT.filter(lambda v: not isinstance(v, list)), BAD_TEXT.map(lambda v: [v]), st.just(["n"] * 101)
        ),  # fmt: skip
    }
    doc[field] = draw(values[field])
    if field == "in_channels" and doc[field] == 3:  # consistent lengths: only the model can tell it is wrong
        doc.update(mean=[0.0] * 3, std=[1.0] * 3, channel_order=["red", "green", "blue"])
    return doc, field


def test_generated_bad_preprocess_json_is_refused_by_predict(tmp_path_factory, tmp_path, record_property):
    """Generated bad preprocess.json documents beside a real trained model (each field broken by type, range,
    NaN/inf, length, emptiness, repetition; extra and missing keys; fields that disagree with the model's own
    input channels, size, dtype or outputs), given to `nas predict` through model.pt2 and model.onnx: one line
    naming the field, and no large allocation (the input size is bounded before any tensor is made)."""
    import json
    import os

    import numpy as np

    model_dir = digits_model(tmp_path_factory)
    images = tmp_path / "digits.npy"
    np.save(images, np.zeros((2, 8, 8), dtype=np.float32))
    good = json.loads((model_dir / "preprocess.json").read_text())
    for fmt in ("pt2", "onnx"):  # a good file predicts, and brings the runtimes in before measuring
        assert nas("predict", str(model_dir), str(images), "--format", fmt, "--json").code == 0
    folders, seen = Folder(tmp_path), set()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @settings(max_examples=150, **HYPOTHESIS)
    @given(case=preprocess_cases(good), fmt=st.sampled_from(["pt2", "onnx"]))
    def check(case: tuple[dict[str, Any], str], fmt: str) -> None:
        doc, field = case
        model = folders.next()
        for name in ("model.pt2", "model.onnx"):
            os.link(model_dir / name, model / name)
        (model / "preprocess.json").write_text(json.dumps(doc))
        out = nas("predict", str(model), str(images), "--format", fmt, "--out", str(model / "p.csv"))
        line = assert_refused(out, "preprocess.json: ")
        assert line.split("preprocess.json: ", 1)[1].startswith(field), (field, line)
        assert not (model / "p.csv").exists()
        seen.add((json.dumps(doc, sort_keys=True), fmt))

    check()
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    record_property("tried", len(seen))
    assert grown_mb < 100, f"peak memory grew by {grown_mb:.0f} MB while refusing preprocess.json files"
    assert len(seen) >= 120, f"only {len(seen)} distinct bad preprocess.json files"


def test_preprocess_json_that_is_no_json_object_or_no_file_is_refused(tmp_path_factory, tmp_path, record_property):
    """preprocess.json that is not JSON, not an object, not UTF-8, nested 100,000 deep, over the size limit, a key
    given twice, a FIFO, a folder, a link to /dev/zero, a link out of the model folder, missing: one line naming
    the file, at once (nothing blocks on the FIFO or reads /dev/zero forever)."""
    import os

    import numpy as np

    model_dir = digits_model(tmp_path_factory)
    images = tmp_path / "digits.npy"
    np.save(images, np.zeros((1, 8, 8), dtype=np.float32))
    outside = tmp_path / "outside.json"
    outside.write_text((model_dir / "preprocess.json").read_text())
    cases: list[tuple[str, Callable[[Path], object], str]] = [
        ("not JSON", lambda p: p.write_text("{format: 1"), "not JSON"),
        ("a list", lambda p: p.write_text("[1, 2]"), "JSON object"),
        ("a string", lambda p: p.write_text('"nas-preprocess/1"'), "JSON object"),
        ("empty", lambda p: p.write_bytes(b""), "not JSON"),
        ("not UTF-8", lambda p: p.write_bytes(b"\xff\xfe{}"), "UTF-8"),
        ("deep", lambda p: p.write_text("[" * 100_000), "nested"),
        ("huge", lambda p: p.write_bytes(b" " * (5 * 1024 * 1024)), "MB"),
        ("twice", lambda p: p.write_text('{"format": "nas-preprocess/1", "format": "x"}'), "format: is given twice"),
        ("FIFO", lambda p: os.mkfifo(p), "is a FIFO"),
        ("folder", lambda p: p.mkdir(), "is a folder"),
        ("/dev/zero", lambda p: os.symlink("/dev/zero", p), "character device"),
        ("link out", lambda p: os.symlink(outside, p), "out of the model folder"),
        ("dangling", lambda p: os.symlink(p.parent / "nowhere.json", p), "broken symbolic link"),
        ("missing", lambda p: None, "is missing"),
    ]  # fmt: skip
    folders, tried = Folder(tmp_path), 0
    for what, make, needle in cases:
        model = folders.next()
        os.link(model_dir / "model.pt2", model / "model.pt2")
        make(model / "preprocess.json")
        start = time.monotonic()
        assert_refused(nas("predict", str(model), str(images)), "preprocess.json", needle)
        assert time.monotonic() - start < 30, what
        tried += 1
    inside = folders.next()  # a link within the model folder is fine
    os.link(model_dir / "model.pt2", inside / "model.pt2")
    (inside / "contract.json").write_text((model_dir / "preprocess.json").read_text())
    os.symlink("contract.json", inside / "preprocess.json")
    assert nas("predict", str(inside), str(images), "--json").code == 0
    record_property("tried", tried + 1)
