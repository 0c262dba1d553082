"""`nas config check CONFIG [--set KEY.PATH=VALUE ...]`: a dry run of what a search needs, before it starts.

A search finds a missing dataset, an unreachable cluster or a network that cannot train only once it runs, maybe
on a cluster after a queue. This command checks each of them in seconds, in order, and prints one line a check:

    ok       config    the file (or shipped name) parses and validates, with its overrides
    ok       space     the search space (`encoding`) loads
    ok       dataset   the data is there, counted (classes, images; a missing file named)
    ok       ray       `ray.address`, when given, answers within a few seconds
    ok       training  one step of the space's smallest network trains (`fitness.objective: train`)

A check that fails prints `problem` and the one-line reason (with the config key path where there is one); a
check that cannot run prints `skipped` and why (a synthetic objective trains nothing; nothing after an invalid
config can be checked). The exit code is 0 when no check has a problem, else 2, after every line is printed: one
run shows every problem, not the first alone.
"""

import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nas.config import Config, load_config
from nas.errors import UserError, one_line
from nas.genome import shortcuts
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace, load_space
from nas.shipped_configs import resolve_config

Outcome = Literal["ok", "problem", "skipped"]
RAY_CHECK_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Check:
    """One printed line: which check, how it went, and what it found (or why it failed or did not run)."""

    name: str
    outcome: Outcome
    text: str

    def line(self) -> str:
        return f"{self.outcome:<8} {self.name:<9} {one_line(self.text)}"


def check_command(config_path: str | Path, *, overrides: Sequence[str] | None = None) -> int:
    """Print one line per check of the config at `config_path` (a path or a shipped name) with `overrides`
    applied; returns 0 when none found a problem, else 2."""
    problems = 0
    for check in run_checks(config_path, overrides or ()):
        print(check.line(), flush=True)  # each as it finishes: the training step may take seconds
        problems += check.outcome == "problem"
    return 2 if problems else 0


def run_checks(config_path: str | Path, overrides: Sequence[str]) -> Iterator[Check]:
    """The checks in order; a later one that needs what an earlier one failed to give is skipped."""
    config = yield from config_check(config_path, overrides)
    if config is None:
        for name in ("space", "dataset", "ray", "training"):
            yield Check(name, "skipped", "the config is not valid")
        return
    space = yield from space_check(config)
    data_ok = yield from dataset_check(config)
    yield ray_check(config)
    if space is None:
        yield Check("training", "skipped", "no search space")
    elif config.fitness.objective != "train":
        yield Check("training", "skipped", f"fitness.objective is {config.fitness.objective}: no network is trained")
    elif not data_ok:
        yield Check("training", "skipped", "the dataset did not load")
    else:
        yield training_check(config, space)


def config_check(config_path: str | Path, overrides: Sequence[str]) -> Generator[Check, None, Config | None]:
    try:
        path = resolve_config(config_path)
        config = load_config(path, overrides)
    except UserError as exc:
        yield Check("config", "problem", str(exc))
        return None
    budget = config.search.budget
    limits = [f"{budget.evaluations:,} evaluations" if budget.evaluations else "", f"{budget.hours:g} h"
              if budget.hours else ""]  # fmt: skip
    yield Check("config", "ok", f"{path}: {config.name}, strategy {config.search.strategy}, objective "
                f"{config.fitness.objective}, budget {' or '.join(x for x in limits if x)}")  # fmt: skip
    return config


def space_check(config: Config) -> Generator[Check, None, SearchSpace | None]:
    if config.encoding is None:
        why = "a baseline-only config searches nothing" if config.baseline is not None else "a search needs one"
        yield Check("space", "skipped" if config.baseline is not None else "problem", f"encoding: not set ({why})")
        return None
    try:
        space = load_space(config.encoding)
    except UserError as exc:
        yield Check("space", "problem", f"encoding: {exc}")
        return None
    bits = "-".join(map(str, sorted(set(space.bit_length_range()))))
    yield Check("space", "ok", f"{space.name} ({config.encoding}): {space.num_blocks} blocks, "
                f"{len(space.dimensions)} dimensions, {bits} shortcut bits")  # fmt: skip
    return space


def dataset_check(config: Config) -> Generator[Check, None, bool]:
    from nas.data.summary import bbbc021_problem, summarise

    name = config.dataset.name
    try:
        summary = summarise(config.dataset, config.seed)
        problem = bbbc021_problem(summary) if name == "bbbc021" else None
        if problem is not None:
            raise problem
    except UserError as exc:
        yield Check("dataset", "problem", str(exc))
        return False
    yield Check("dataset", "ok", f"{name}: {dataset_counts(summary)}")
    return True


def dataset_counts(summary: dict[str, Any]) -> str:
    """`10 classes, 1,797 images (train 1,294, val 143, test 360)`: what `nas data summary` counted."""
    text = f"{summary['classes']:,} classes, {summary['images']:,} images"
    splits = summary.get("splits")
    if splits:
        text += " (" + ", ".join(f"{split} {count:,}" for split, count in splits.items()) + ")"
    return text


def ray_check(config: Config) -> Check:
    """`ray.address` reachable within `RAY_CHECK_TIMEOUT_S` (a TCP connection, no Ray started). `auto` is
    found by Ray itself on the machine the search runs on, so it is not checked here."""
    address = config.ray.address
    if address is None or address == "local":
        return Check("ray", "skipped", "no ray.address: the search starts a local Ray (or none with --workers 0)")
    from nas.evaluate.ray_cluster import check_address, check_reachable

    try:
        address = check_address(address)
        if address == "auto":
            return Check("ray", "skipped", "ray.address is auto: Ray finds the cluster of the machine it runs on")
        start = time.perf_counter()
        check_reachable(address, RAY_CHECK_TIMEOUT_S)
    except UserError as exc:
        return Check("ray", "problem", str(exc))
    return Check("ray", "ok", f"{address} answers ({time.perf_counter() - start:.2f} s)")


def smallest_genome(space: SearchSpace) -> Genome:
    """The space's cheapest member: fewest layers, narrowest growth, no shortcut beyond the chain."""
    blocks = tuple((lay[0], gro[0]) for lay, gro in zip(space.layers, space.growth_rate, strict=True))
    lr = space.learning_rate[0] if space.learning_rate else None
    return space.genome(space.encode(blocks, lr), tuple("0" * shortcuts.bit_length(layers) for layers, _ in blocks))


def training_check(config: Config, space: SearchSpace) -> Check:
    """One step of the smallest network on the config's data and device, after the checks a search makes when it
    starts (the data's size against the space's depth, the largest network against `limits`)."""
    from nas.data.loading import load_dataset
    from nas.evaluate.step_check import train_one_step
    from nas.evaluate.trainer import seeded_model
    from nas.genome.architecture import Architecture, check_input_size
    from nas.model.analytic_cost import check_cost

    try:
        data = load_dataset(config.dataset, config.seed)
        fixed = (data.in_channels, data.num_classes, data.input_size)
        check_input_size(data.input_size, space.num_blocks, "encoding", space.stem_stride)
        check_cost(Architecture.from_space(space, space.largest_genome(), *fixed), config.limits,
                   config.fitness.batch_size, "the largest network of this search space")  # fmt: skip
        arch = Architecture.from_space(space, smallest_genome(space), *fixed)
        params, _ = check_cost(arch, config.limits, config.fitness.batch_size, "the smallest network")
        report = train_one_step(seeded_model(arch, config.seed), data, config.fitness)
    except UserError as exc:
        return Check("training", "problem", str(exc))
    except Exception as exc:  # whatever the step raised is the finding, as a failed candidate's error is
        return Check("training", "problem", f"one step of the smallest network failed: {type(exc).__name__}: {exc}")
    return Check("training", "ok", f"one step of the smallest network ({params:,} parameters) on {report.device}: "
                 f"loss {report.loss:.3f}, {report.seconds:.2f} s")  # fmt: skip
