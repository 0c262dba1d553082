"""The typed search config: every section DESIGN.md names, loaded with `yaml.safe_load` and validated in full.

A config is a tree of dataclasses. `from_mapping` walks the YAML mapping against the dataclass fields and their
type hints, so an unknown key, a wrong type or an out-of-range value is a `UserError` whose message starts with
the key path (`search.pso.c1: must be > 0`). Ranges live next to the field as metadata (`bounds(...)`), so the
rule and the default are read in one place. Paths (`encoding`, `dataset.root`, ...) are relative to the config
file and are resolved to absolute paths on load, so the copy saved in a run directory means the same thing.
"""

import copy
import dataclasses
import math
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from nas.errors import UserError, shown
from nas.genome.spaces import resolve_space
from nas.registry import Registry
from nas.shipped_configs import resolve_config
from nas.yamlfile import dump_yaml, load_unique, load_yaml_mapping


def bounds(default: Any, low: float | None = None, high: float | None = None, *, open_low: bool = False,
           open_high: bool = False, path: bool = False) -> Any:  # fmt: skip
    """A dataclass field with a default and an allowed range (`open_*` makes that end exclusive)."""
    meta = {"low": low, "high": high, "open_low": open_low, "open_high": open_high, "path": path}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type) -> Any:
    return field(default_factory=cls)


@dataclass
class DatasetConfig:
    """`dataset`: which data, where it lives, and how it is split and cached."""

    name: str = "digits"
    root: str | None = bounds(None, path=True)
    metadata: str | None = bounds(None, path=True)
    download: bool = False
    cache_dir: str | None = bounds(None, path=True)
    validation_fraction: float = bounds(0.1, 0, 1, open_low=True, open_high=True)
    train_subset: float = bounds(1.0, 0, 1, open_low=True)
    resize: int | None = bounds(None, 4, 4096)
    holdout_compounds: int = bounds(3, 1, 37)
    train_cell_line: Literal["MCF7", "A549"] = "MCF7"
    workers: int = bounds(0, 0, 256)


@dataclass
class FitnessConfig:
    """`fitness`: how one candidate is scored (the fixed-budget trainer, or the synthetic objective)."""

    objective: Literal["train", "synthetic"] = "train"
    epochs: int = bounds(3, 1, 10_000)
    batch_size: int = bounds(64, 1, 65_536)
    eval_batch_size: int = bounds(512, 1, 65_536)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = bounds(0.1, 0, 10, open_low=True)
    momentum: float = bounds(0.9, 0, 1, open_high=True)
    nesterov: bool = True
    weight_decay: float = bounds(5e-4, 0, 1)
    schedule: Literal["step", "cosine", "one-cycle", "constant"] = "cosine"
    lr_values: list[float] | None = None
    warmup_fraction: float = bounds(0.3, 0, 1, open_high=True)
    label_smoothing: float = bounds(0.0, 0, 1, open_high=True)
    augment: bool = True
    # `auto`: dihedral on bbbc021/bbbc014 (the transfer arm's recipe), crop-flip elsewhere (nas.evaluate.recipe).
    augmentation: Literal["auto", "crop-flip", "dihedral", "none"] = "auto"
    # `auto`: balanced (inverse class frequency) on bbbc021/bbbc014, as the transfer arm; none elsewhere.
    class_weights: Literal["auto", "balanced", "none"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    test: bool = False
    seconds_per_evaluation: float = bounds(0.0, 0, 86_400)
    # Bitwise-repeatable GPU training (nas.evaluate.determinism); the CPU is deterministic without it.
    deterministic: bool = False
    # synthetic objective only: extra sleep per GFLOP of the candidate (analytic FLOPs), so that candidates cost
    # what their size says, as real trainings do (benchmarks and tests of dispatch and cluster use)
    seconds_per_gflop: float = bounds(0.0, 0, 86_400)
    # Which function the synthetic objective is (`nas.evaluate.landscapes`): `bump` (deep and narrow, input and
    # output links), `epistatic` (shallow and wide, interacting shortcut bits), `noisy` (bump plus seed-like
    # noise), `cost` (accuracy minus a parameter cost); or a generated instance `<family>/<instance>`
    # (`nas.evaluate.landscape_family`: smooth, rugged, deceptive, noisy, costly; instances from 1000 on are the
    # test set). Checked when the objective is built. Ignored by the `train` objective.
    landscape: str = "bump"


@dataclass
class BudgetConfig:
    """`search.budget`: stop after this many evaluations and/or hours, whichever comes first."""

    evaluations: int | None = bounds(200, 1, 10_000_000)
    hours: float | None = bounds(None, 0, 10_000, open_low=True)


@dataclass
class FixedBlock:
    """One block of `search.architecture`: the fixed architecture the `ga` strategy searches shortcuts for."""

    layers: int = bounds(4, 1, 64)
    growth_rate: int = bounds(12, 1, 512)


# What strategies declare of themselves (`nas.strategies.strategy.register(name, config=...)`): their names, one
# of which `search.strategy` must be, and their own config sections, `search.<name>` in a file, validated against
# the dataclass like every built-in section. Filled when `nas.strategies` is imported, which importing the
# package `nas` does first: a config is never read before every strategy has declared itself, and this module
# needs no import of the strategies (which import it).
STRATEGY_NAMES: Registry[type] = Registry("strategy")
SEARCH_SECTIONS: dict[str, type] = {}


def register_search_section(name: str, cls: type) -> None:
    """Declare `search.<name>` as a section of dataclass `cls`."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"the config section {name!r} must be a dataclass, not {cls!r}")
    if name in SEARCH_SECTIONS or name in {f.name for f in dataclasses.fields(SearchConfig)}:
        raise ValueError(f"search config section {name!r} declared twice")
    SEARCH_SECTIONS[name] = cls


def registered_defaults() -> dict[str, Any]:
    """Every built-in registered section at its defaults, by name: what `search` holds when the file gives none."""
    return {name: SEARCH_SECTIONS[name]() for name in sorted(SEARCH_SECTIONS) if built_in(name)}


def built_in(name: str) -> bool:
    """Whether section `name` is declared by evonas's own strategies: those are in every config, at their
    defaults when not given, as a saved `config.yaml` has always had them. A plugin's section (a user's module,
    a test's) is there only when the file gives it, so that a saved config never names a section that a worker
    or a later resume without that plugin cannot read."""
    return SEARCH_SECTIONS[name].__module__.split(".")[0] == "nas"


def check_section(value: Any, key: str) -> None:
    """A registered section's rules across its fields: its `check(key)` method, when it has one, raises a
    `UserError` under `key` (its path, `search.<name>`); a range on one field is `bounds(...)`'s."""
    check = getattr(value, "check", None)
    if check is not None:
        check(key)


@dataclass
class FidelityConfig:
    """`search.fidelity`: successive halving. Candidates train `min_epochs` first; the best 1/`eta` of a rung
    continue from their saved state to `eta` times as many epochs, up to `fitness.epochs` (`nas.run.fidelity`).

    `signal` is what a rung is ranked by for promotion (`nas.run.fidelity`, section Signals): `loss` (the
    default), the negated mean training loss of the rung's last epoch (SoTL-E); `accuracy`, the validation
    accuracy at epoch e of the full schedule; `restart`, the validation accuracy after a complete schedule of the
    rung's own epochs, trained from scratch at every rung (no state carried, so a promoted candidate pays every
    rung again). The default is the best measured at no extra compute (benchmarks/RESULTS.md, "The rung
    signal"): at 1 of 4 epochs on `cifar10_bench`, `loss` ranks networks at 0.84 of the seed ceiling,
    `accuracy` at 0.77."""

    min_epochs: int = bounds(1, 1, 10_000)
    eta: int = bounds(3, 2, 1000)
    # what promotion ranks a rung by: loss (SoTL-E), accuracy or restart (the class docstring says each)
    signal: Literal["loss", "accuracy", "restart"] = "loss"


@dataclass
class ConstraintsConfig:
    """`search.constraints`: caps on the costs of a candidate. One over a cap is never trained: it is told to
    the strategy as a failed result whose error says which cap it broke (`nas.evaluate.constraints`)."""

    params: int | None = bounds(None, 0, 10**15, open_low=True)
    flops: int | None = bounds(None, 0, 10**18, open_low=True)
    # Measured, so known only once the candidate is trained: a result over it is told as failed all the same.
    latency_ms: float | None = bounds(None, 0, 1e9, open_low=True)


@dataclass
class ScreenConfig:
    """`search.screen`: predictor screening (`nas.run.screen`). The strategy proposes `factor` times the free
    slots; a predictor fitted on the run's finished results picks the free slots' worth to train."""

    factor: int = bounds(3, 2, 1000)
    # Finished ok results the predictor needs before it is used; before that every proposal is trained.
    after: int = bounds(20, 2, 10_000_000)


@dataclass
class InheritConfig:
    """`search.inherit`: weight inheritance (`nas.run.inheritance`). A new candidate starts from the trained
    weights of its nearest evaluated relative (`nas.genome.relatedness.distance`) and trains `epochs` epochs, a
    complete learning-rate schedule of its own; with no relative within `max_distance` it trains from scratch."""

    # epochs an inheriting candidate trains; below fitness.epochs (whose highest value is 10,000)
    epochs: int = bounds(3, 1, 9_999)
    # the nearest relative farther than this trains from scratch instead
    max_distance: float = bounds(4.0, 0, 1e6, open_low=True)
    # only the weights of this many best results are kept as parents (the others' files are deleted as they
    # fall out); None: every ok result's, a few MB a candidate for the whole run
    keep: int | None = bounds(None, 1, 1_000_000)


@dataclass
class SearchConfig:
    """`search`: the strategy, its parameters and the budget.

    `strategy` names a registered strategy (`nas.strategies.STRATEGIES`; checked by `parse_config`). The
    strategies' own sections (`pso`, `ga`, `hgapso`, `regularized_evolution`, ...) are declared by the modules
    that own them; they sit beside the built-in sections in the file and in `extra` here, every registered one
    present (its defaults when the file has none), so a saved config records them all. Read any section with
    `section(name)`."""

    strategy: str = "hgapso"
    # sync: one batch at a time, the same search whatever the number of workers; async: every slot kept busy,
    # each result told the moment it arrives (nas.run.policies.AsyncPolicy)
    mode: Literal["sync", "async"] = "sync"
    budget: BudgetConfig = section(BudgetConfig)
    batch_size: int = bounds(8, 1, 100_000)
    architecture: list[FixedBlock] | None = None
    fidelity: FidelityConfig | None = None  # off when absent
    # The driver ends a search after this many batches in a row whose genomes the log already held (none of
    # them new work); strategies never ask repeats, so this guards a resumed run. None: no limit.
    stall_batches: int | None = bounds(50, 1, 10_000_000)
    # What the search optimises: fitness first (maximised), then costs (minimised; params and flops analytic,
    # latency_ms measured). Absent: fitness alone. With several, strategies rank by Pareto front and crowding.
    objectives: list[Literal["fitness", "params", "flops", "latency_ms"]] | None = None
    constraints: ConstraintsConfig | None = None  # caps on costs; none when absent
    screen: ScreenConfig | None = None  # predictor screening (async only); off when absent
    inherit: InheritConfig | None = None  # weight inheritance (whole trainings only); off when absent
    extra: dict[str, Any] = field(default_factory=registered_defaults, metadata={"extra_sections": SEARCH_SECTIONS})

    @property
    def cost_objectives(self) -> tuple[str, ...]:
        """The objectives after fitness: empty for a single-objective search."""
        return tuple((self.objectives or ["fitness"])[1:])

    def section(self, name: str) -> Any:
        """The section `search.<name>`: a registered one (looked up first: strategies read theirs on every ask),
        or a built-in field. A section registered after this config was built is added at its defaults."""
        if name in self.extra:
            return self.extra[name]
        if name != "extra" and name in {f.name for f in dataclasses.fields(self)}:
            return getattr(self, name)
        self.extra[name] = SEARCH_SECTIONS[name]()
        return self.extra[name]


@dataclass
class ResourcesConfig:
    """`resources`: what one candidate asks of a Ray worker, and how faults are handled."""

    gpus_per_trial: float = bounds(0.0, 0, 64)
    cpus_per_trial: float = bounds(1.0, 0, 256, open_low=True)
    max_retries: int = bounds(2, 0, 100)
    trial_timeout_s: float | None = bounds(None, 0, 1e7, open_low=True)
    # Keep a worker process for the next candidate: a fresh one per candidate (Ray's default for GPU tasks) pays
    # the interpreter start, the torch import and CUDA initialisation, seconds each time, against candidates that
    # train in seconds on a modern GPU. `false` restores a fresh process per candidate.
    reuse_workers: bool = True


@dataclass
class RayConfig:
    """`ray`: the cluster address (None: an embedded local Ray), its dashboard, and the workers' environment."""

    address: str | None = None
    workers: int | None = bounds(None, 0, 100_000)
    dashboard: bool = False
    # Ray's runtime environment for every worker of the search, given to `ray.init(runtime_env=...)`: `pip`,
    # `working_dir`, `py_modules`, `env_vars`, ... (Ray's own fields); it ships evonas to a cluster whose nodes
    # do not have it installed. Local `working_dir` and `py_modules` paths are relative to the config file.
    # None: the environment the workers were started in.
    runtime_env: dict[str, Any] | None = field(default=None, metadata={"runtime_env": True})


@dataclass
class BaselineConfig:
    """`baseline`: the pretrained-transfer arm (Kensert et al. 2019)."""

    model: Literal["resnet50", "inception_v3", "inception_resnet_v2"] = "resnet50"
    # Several backbones in turn (the paper's arm), in place of `model`; `weights` may then name each file
    # with a `{model}` placeholder (nas.transfer.plan).
    models: list[Literal["resnet50", "inception_v3", "inception_resnet_v2"]] | None = None
    weights: str | None = bounds(None, path=True)
    pretrained: bool = True
    input_size: int | None = bounds(None, 16, 1024)
    epochs: int = bounds(5, 1, 1000)
    batch_size: int = bounds(16, 1, 4096)
    lr: float = bounds(1e-3, 0, 10, open_low=True)
    momentum: float = bounds(0.9, 0, 1, open_high=True)
    weight_decay: float = bounds(0.0, 0, 1)
    rotations: bool = True
    class_weights: Literal["balanced", "none"] = "balanced"
    device: Literal["auto", "cpu", "cuda"] = "auto"


@dataclass
class LimitsConfig:
    """`limits`: the largest network any command builds, checked by formula before anything is allocated.

    An architecture within every per-field bound (200 layers, growth 4096, stem 4096) can still need 1e13
    parameters; building it ends in an allocation traceback or the kernel's OOM killer. `max_params` caps the
    parameters, `max_activation_gib` the activation memory one training step keeps at `fitness.batch_size`
    (fp32, by `nas.model.analytic_cost.activation_bytes`). Defaults leave every shipped search space far inside
    (densenet_cifar's largest member: 3.3 M parameters, 5.1 GiB at batch 64) and refuse what no single GPU holds.
    """

    max_params: int = bounds(200_000_000, 1, 10**15)
    max_activation_gib: float = bounds(80.0, 0, 1e9, open_low=True)


@dataclass
class Config:
    """A whole search config (`search_configs/*.yaml`)."""

    name: str = "search"
    seed: int = bounds(0, 0, 2**63 - 1)
    # A shipped space by name (`densenet_small`) or a path to a space file (nas.genome.spaces.resolve_space).
    encoding: str | None = field(default=None, metadata={"path": True, "space": True})
    dataset: DatasetConfig = section(DatasetConfig)
    fitness: FitnessConfig = section(FitnessConfig)
    search: SearchConfig = section(SearchConfig)
    resources: ResourcesConfig = section(ResourcesConfig)
    ray: RayConfig = section(RayConfig)
    limits: LimitsConfig = section(LimitsConfig)
    baseline: BaselineConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["search"].update(data["search"].pop("extra"))  # registered sections sit beside the built-in ones
        return data

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is list:
        return f"a list of {type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def convert(value: Any, tp: Any, key: str, base: Path | None) -> Any:
    """Check `value` against the type hint `tp`, converting ints to floats and mappings to dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return convert(value, args[0], key, base)
    if origin is Literal:
        if value not in typing.get_args(tp) or isinstance(value, bool):
            raise UserError(f"must be {type_name(tp)}, got {shown(value)}", key=key)
        return value
    if origin is list:
        if not isinstance(value, list):
            raise UserError(f"must be {type_name(tp)}", key=key)
        return [convert(v, typing.get_args(tp)[0], f"{key}[{i}]", base) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, key, base)
    if origin is dict:
        return free_mapping(value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"must be true or false, not {shown(value)}", key=key)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            spelling = " in plain decimal digits" if isinstance(value, str) and any(c.isdigit() for c in value) else ""
            raise UserError(f"must be an integer{spelling}, not {short(value)}", key=key)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not finite(value):
            raise UserError(f"must be a finite number, not {short(value)}", key=key)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"must be a string, not {short(value)}", key=key)
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")


def free_mapping(value: Any, key: str) -> dict[str, Any]:
    """A mapping whose keys are another program's (`ray.runtime_env`): names checked as strings, values kept as
    YAML gave them, copied so that the config owns what it holds."""
    if not isinstance(value, dict):
        raise UserError(f"must be a mapping, not {short(value)}", key=key)
    for name in value:
        if not isinstance(name, str):
            raise UserError(f"keys must be strings, got {short(name)}", key=key)
    return copy.deepcopy(value)


def runtime_env_paths(env: dict[str, Any], base: Path, key: str) -> dict[str, Any]:
    """`ray.runtime_env` with its local `working_dir` and `py_modules` made absolute against the config's folder,
    as every path of a config is (Ray reads them on the driver's machine, from its working directory, and
    uploads what they hold). A URI (`s3://...`, `https://....zip`) is left as it is."""

    def local(value: Any, where: str) -> Any:
        return resolved_path(value, base, where) if isinstance(value, str) and "://" not in value else value

    env = dict(env)
    if "working_dir" in env:
        env["working_dir"] = local(env["working_dir"], f"{key}.working_dir")
    if isinstance(env.get("py_modules"), list):
        env["py_modules"] = [local(p, f"{key}.py_modules[{i}]") for i, p in enumerate(env["py_modules"])]
    return env


def short(value: Any) -> str:
    return shown(value)


def finite(value: int | float) -> bool:
    """Whether a YAML number is a finite float: an integer beyond float range (10**400) is not."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def resolved_path(value: str, base: Path, key: str) -> str:
    """A path field made absolute against the config's folder; one the OS cannot name is a `UserError`."""
    try:
        return str((base / Path(value).expanduser()).resolve())
    except (ValueError, OSError, RuntimeError) as exc:
        reason = "holds a NUL byte" if "null" in str(exc) else f"is not a usable path ({type(exc).__name__})"
        raise UserError(f"{reason}: {shown(value)}", key=key) from None


def check_bounds(value: Any, meta: typing.Mapping[str, Any], key: str) -> None:
    """Enforce the field's range; booleans and strings carry no range."""
    if value is None or not isinstance(value, int | float) or isinstance(value, bool):
        return
    low, high = meta.get("low"), meta.get("high")
    if low is not None and (value <= low if meta.get("open_low") else value < low):
        raise UserError(f"must be {'>' if meta.get('open_low') else '>='} {low}, got {shown(value)}", key=key)
    if high is not None and (value >= high if meta.get("open_high") else value > high):
        raise UserError(f"must be {'<' if meta.get('open_high') else '<='} {high}, got {shown(value)}", key=key)


def from_mapping(cls: type, data: Any, key: str = "", base: Path | None = None) -> Any:
    """Build dataclass `cls` from a mapping, validating every key; errors carry the key path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"must be a mapping, not {short(data)}", key=key or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    extra_field = next((f for f in fields.values() if "extra_sections" in f.metadata), None)
    extra_sections: dict[str, type] = extra_field.metadata["extra_sections"] if extra_field else {}
    known = [n for n in fields if fields[n] is not extra_field] + sorted(extra_sections)
    for name in data:
        if name not in known:
            where = f"{key}.{shown(name).strip(chr(39))}" if key else shown(name).strip(chr(39))
            raise UserError(f"unknown key (known: {', '.join(known)})", key=where)
    values: dict[str, Any] = {}
    if extra_field is not None:
        values[extra_field.name] = {  # every built-in section (its defaults when absent) and the given ones
            name: from_mapping(extra_sections[name], data.get(name), f"{key}.{name}" if key else name, base)
            for name in sorted(extra_sections)
            if name in data or built_in(name)
        }
    for name, f in fields.items():
        if name not in data or f is extra_field:
            continue
        where = f"{key}.{name}" if key else name
        value = convert(data[name], hints[name], where, base)
        check_bounds(value, f.metadata, where)
        if f.metadata.get("space") and value is not None:
            value = str(resolve_space(value, base, where))
        elif f.metadata.get("runtime_env") and value is not None and base is not None:
            value = runtime_env_paths(value, base, where)
        elif f.metadata.get("path") and value is not None and base is not None:
            value = resolved_path(value, base, where)
        values[name] = value
    return cls(**values)


NAME_CHARS = 100
UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:]")


def check_name(name: str) -> str:
    """`name` names the default run directory (`runs/<name>-<time>`): one safe path component, or a `UserError`.

    `../../escaped` would put the run outside `runs/`, an absolute path wherever it points, and a newline or
    another control character would end up in a folder name; `:` and `\\` are separators elsewhere.
    """
    if not name.strip() or name != name.strip() or name in (".", "..") or UNSAFE_NAME.search(name):
        raise UserError("must be one plain folder name (no '/', '\\', ':', control characters, '.' or '..', no "
                        f"surrounding spaces), got {shown(name)}", key="name")  # fmt: skip
    if len(name) > NAME_CHARS:
        raise UserError(f"must be at most {NAME_CHARS} characters, got {len(name):,}", key="name")
    return name


def field_bounds(cls: type, name: str) -> tuple[Any, Any]:
    """The (low, high) range of field `name` of config dataclass `cls`: what a command-line flag that overrides
    it is held to as well, when it is parsed (`--seed` by the config's own range: a run saved with a seed its
    config refuses could never be resumed, exported or reported)."""
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == name)
    return meta.get("low"), meta.get("high")


def check_fitness_uncapped(data: Any) -> None:
    """Fitness is what the search maximises: a cap on it is refused by name, before the generic unknown key."""
    search = data.get("search") if isinstance(data, dict) else None
    constraints = search.get("constraints") if isinstance(search, dict) else None
    if isinstance(constraints, dict) and "fitness" in constraints:
        raise UserError("fitness cannot be capped (it is maximised; caps apply to params, flops, latency_ms)",
                        key="search.constraints.fitness")  # fmt: skip


def check_objectives(objectives: list[str] | None) -> None:
    """`search.objectives`: fitness first, each name once."""
    if objectives is None:
        return
    if not objectives or objectives[0] != "fitness":
        raise UserError("must start with fitness, the objective every search maximises", key="search.objectives")
    for i, name in enumerate(objectives):
        if name in objectives[:i]:
            raise UserError(f"{name} is listed twice", key=f"search.objectives[{i}]")


def check_screen(search: SearchConfig) -> None:
    """`search.screen` picks among asks of free slots and predicts fitness alone: async and one objective only."""
    if search.screen is None:
        return
    if search.mode != "async":
        raise UserError("needs search.mode: async (a sync batch is told whole, as the strategy drew it)",
                        key="search.screen")  # fmt: skip
    if search.cost_objectives:
        raise UserError("predicts fitness alone: not with several search.objectives", key="search.screen")


def check_inherit(config: Config) -> None:
    """`search.inherit` trains whole candidates for fewer epochs: not with `search.fidelity`'s rungs, and fewer
    than `fitness.epochs`."""
    inherit = config.search.inherit
    if inherit is None:
        return
    if config.search.fidelity is not None:
        raise UserError("cannot be combined with search.fidelity (rungs do not inherit weights); remove one of them",
                        key="search.inherit")  # fmt: skip
    if inherit.epochs >= config.fitness.epochs:
        raise UserError(f"must be below fitness.epochs ({config.fitness.epochs}): an inheriting candidate trains "
                        f"fewer epochs; got {inherit.epochs}", key="search.inherit.epochs")  # fmt: skip


def parse_config(data: dict[str, Any], base: Path | None = None) -> Config:
    """Validate a config mapping; `base` is the folder relative paths are resolved against."""
    check_fitness_uncapped(data)
    config = from_mapping(Config, data, "", base)
    check_objectives(config.search.objectives)
    check_name(config.name)
    STRATEGY_NAMES.get(config.search.strategy, key="search.strategy")
    if config.fitness.lr_values is not None:
        for i, v in enumerate(config.fitness.lr_values):
            check_bounds(v, {"low": 0, "open_low": True, "high": 10}, f"fitness.lr_values[{i}]")
        if not config.fitness.lr_values:
            raise UserError("must list at least one learning rate", key="fitness.lr_values")
    budget = config.search.budget
    if budget.evaluations is None and budget.hours is None:
        raise UserError("give evaluations, hours, or both", key="search.budget")
    for name, value in config.search.extra.items():
        check_section(value, f"search.{name}")
    fidelity = config.search.fidelity
    if fidelity is not None and fidelity.min_epochs >= config.fitness.epochs:
        raise UserError(f"must be below fitness.epochs ({config.fitness.epochs}), the top rung; got "
                        f"{fidelity.min_epochs}", key="search.fidelity.min_epochs")  # fmt: skip
    check_screen(config.search)
    check_inherit(config)
    return config


def override_parts(item: str) -> tuple[list[str], Any]:
    """One `--set KEY.PATH=VALUE`: the key path's parts and the value parsed as YAML (`3`, `0.1`, `true`,
    `[1, 2]`, `null`, with the numbers of `nas.yamlfile`), or a `UserError` naming the flag."""
    flag = f"--set {shown(item)}"
    key, sep, text = item.partition("=")
    if not sep:
        raise UserError(f"{flag}: must be KEY.PATH=VALUE (no '=' found)")
    parts = key.strip().split(".")
    if not all(part.strip() == part and part for part in parts):
        raise UserError(f"{flag}: the key path must be dot-separated names, none empty or with surrounding spaces")
    try:
        value = load_unique(text, flag)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise UserError(f"{flag}: the value is not valid YAML: {problem}") from None
    except (ValueError, RecursionError, OverflowError) as exc:
        raise UserError(f"{flag}: the value is not valid YAML: {type(exc).__name__}") from None
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of config mapping `data` with each `--set KEY.PATH=VALUE` applied in order (a later one wins).

    Missing mappings on the path are created (so `--set search.fidelity.min_epochs=1` works on a config without
    `search.fidelity`); a path through a value that is not a mapping is a `UserError` naming the flag. The
    result is validated by the caller like the file itself, so an unknown key or a bad value names its key path.
    """
    result = copy.deepcopy(data)
    for item in overrides:
        parts, value = override_parts(item)
        set_at(result, parts, value, f"--set {shown(item)}")
    return result


def set_at(data: dict[str, Any], parts: list[str], value: Any, label: str) -> None:
    """Set `value` at key path `parts` of mapping `data`, creating missing mappings on the way; a path through a
    value that is not a mapping is a `UserError` starting with `label` (the flag or keyword that gave it)."""
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise UserError(f"{label}: {'.'.join(parts[: i + 1])} is {short(child)}, not a mapping")
        node = child
    node[parts[-1]] = value


def from_override(key: str | None, overrides: Sequence[str]) -> bool:
    """Whether config key path `key` (of a validation error) is one an override set or lies under one."""
    if not key:
        return False
    for item in overrides:
        path = item.partition("=")[0].strip()
        if key == path or key.startswith(f"{path}.") or key.startswith(f"{path}["):
            return True
    return False


def load_config(path: str | Path, overrides: Sequence[str] | None = None) -> Config:
    """Load and validate a config file, or a shipped config by name (`smoke`, see `nas.shipped_configs`), with
    `overrides` (`KEY.PATH=VALUE`, see `apply_overrides`) applied to its mapping first; a bad one raises
    `UserError` naming the file and the key path (and `--set` when an override gave the bad value)."""
    p = resolve_config(path)
    overrides = overrides or ()
    data = apply_overrides(load_yaml_mapping(p, "config"), overrides)
    try:
        return parse_config(data, p.resolve().parent)
    except UserError as exc:
        given = " (given by --set)" if from_override(exc.key, overrides) else ""
        raise UserError(f"{p}: {exc}{given}") from None
