"""A picklable test objective whose behaviour per candidate is scripted: succeed, sleep, crash, hang, raise.

Ray workers cannot import the tests folder, so this module is registered with Ray's cloudpickle to travel by
value. Each candidate is told apart by its growth rate (`genome_of(g)`); its fitness is a fixed function of
the genome, and its metrics record when, where and on which device it ran, so tests can read concurrency per
node and the device Ray assigned straight from the results. A rung (`train_rung`) behaves as a whole
evaluation and records the rung it was asked for and the state it started from.
"""

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray.cloudpickle

from nas.evaluate.job import Job
from nas.evaluate.parent import Parent
from nas.evaluate.result import Result
from nas.genome.genome import BlockGene, Genome

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def genome_of(growth_rate: int) -> Genome:
    """A one-layer genome told apart by its growth rate."""
    return Genome(blocks=(BlockGene(layers=1, growth_rate=growth_rate, shortcuts="1"),))


def job_of(growth_rate: int) -> Job:
    """The whole evaluation of `genome_of(growth_rate)`."""
    return Job(genome_of(growth_rate))


def fitness_of(genome: Genome) -> float:
    return genome.blocks[0].growth_rate / 1000


def worker_fault(name: str, root: str, tag: object) -> bool:
    """The faults a worker process suffers, acted out: `crash-once` (exits on the first attempt only, told by a
    marker file under `root` named after `tag`), `crash` (exits on every attempt), `hang`. False for any other
    name, which is the caller's to act out."""
    if name == "crash-once":
        flag = Path(root) / f"crashed-{tag}"
        if not flag.exists():
            flag.write_text("first attempt")
            os._exit(1)
        return True
    if name == "crash":
        os._exit(1)
    if name == "hang":
        time.sleep(3600)
    return False


@dataclass
class ProbeObjective:
    """`plan` maps a growth rate to a behaviour; absent means `ok`.

    Behaviours: `ok`; `sleep:S`; `crash-once` (os._exit on the first attempt, told by a marker file);
    `crash` (always); `hang`; `raise` (an exception escapes, breaking the objective contract on purpose);
    `barrier:N` (wait until N candidates have started, so that they provably run at the same time);
    `wait-file:PATH` (wait until PATH exists, e.g. until the driver has received other results).
    """

    root: str
    plan: dict[int, str] = field(default_factory=dict)
    default: str = "ok"

    def __post_init__(self) -> None:
        Path(self.root).mkdir(parents=True, exist_ok=True)

    def __call__(self, genome: Genome, device: str | None = None) -> Result:
        growth = genome.blocks[0].growth_rate
        started = time.time()
        marker = Path(self.root) / f"started-{growth}-{os.getpid()}-{time.monotonic_ns()}"
        marker.write_text(ray.get_runtime_context().get_node_id())
        behaviour = self.plan.get(growth, self.default)
        metrics: dict[str, Any] = self.act(behaviour, growth)
        metrics |= {
            "start": started,
            "end": time.time(),
            "pid": os.getpid(),
            "device": device,
            "node": ray.get_runtime_context().get_node_id(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }
        return Result(genome.key, genome.to_dict(), "ok", fitness_of(genome), params=growth, metrics=metrics)

    def train_rung(
        self, genome: Genome, epochs: int, full_epochs: int, state: bytes | None, device: str | None
    ) -> Result:
        """The plan's behaviour, as for a whole evaluation; the result names the rung and the state it had."""
        result = self(genome, device)
        result.metrics |= {"rung": [epochs, full_epochs], "from_state": None if state is None else state.decode()}
        result.epochs = epochs
        result.state = None if epochs >= full_epochs else f"{genome.key}:{epochs}".encode()
        return result

    def inherit(self, genome: Genome, parent: Parent, device: str | None) -> Result:
        """The plan's behaviour, as for a whole evaluation; the result names the parent it had."""
        result = self(genome, device)
        result.metrics |= {"inherited_from": parent.key, "epochs": parent.epochs}
        return result

    def act(self, behaviour: str, growth: int) -> dict[str, Any]:
        """Do what the plan says; returns extra metrics."""
        name, _, arg = behaviour.partition(":")
        if worker_fault(name, self.root, growth):
            pass
        elif name == "sleep":
            time.sleep(float(arg))
        elif name == "raise":
            raise RuntimeError(f"candidate {growth} broke")
        elif name == "barrier":
            deadline = time.time() + 120
            while len(list(Path(self.root).glob("started-*"))) < int(arg) and time.time() < deadline:
                time.sleep(0.05)
        elif name == "wait-file":
            deadline = time.time() + 120
            while not Path(arg).exists() and time.time() < deadline:
                time.sleep(0.05)
            return {"released": Path(arg).exists()}
        return {}

    def architecture(self, genome: Genome) -> Any:
        raise NotImplementedError
