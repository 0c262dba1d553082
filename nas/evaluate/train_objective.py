"""The `train` objective: a candidate's fitness is its validation accuracy after the fixed-budget training.

Built once per search: it loads the dataset (validation carved by the config's seed) and is then shipped to the
workers as it is, arrays included, so Ray puts the data in its object store once. Every candidate is built and
initialised from the config's seed and trained with the same seed, so two candidates differ only by their
architecture (and, when the space searches it, their learning rate, which replaces `fitness.lr`).

A candidate over `limits` (`nas.model.analytic_cost.check_cost`) is a failed result before anything is built.
It never raises: any exception inside building or training, out-of-memory included, becomes a failed `Result`
whose error is "ExcType: message" (first line, at most 500 characters). An out-of-memory (CUDA or host) is the
transient `oom` status instead (retried, see `nas.evaluate.result`), and once the exception and its traceback
are gone the CUDA cache is emptied, so the worker can take the next candidate. Only KeyboardInterrupt and
SystemExit get through.

An `ok` result carries the trained network's weights (`Result.weights`, `nas.evaluate.weightsfile`), so the
search can keep its best candidate's and `nas export` write a model that predicts without retraining.

Under `search.inherit` a whole evaluation may start from a relative (`inherit`, a `nas.evaluate.job.Parent`): the
child is built and initialised from the seed as any candidate, then every weight of the parent with a
counterpart is transplanted into it (`nas.model.inherit.transplant`, with the fresh model as `init`, so the
channels without one keep the seeded initialisation and a run stays reproducible), and it trains `parent.epochs`
epochs under a complete learning-rate schedule of that length. Its metrics name the parent (`inherited_from`,
its `distance`) and what was copied (`inheritance`: the counts of `nas.model.inherit.Inheritance`); `epochs` is
the epochs trained, as for every result. Parent weights that fail their check or do not fit the parent's
architecture (which the driver's checks make a bug, not a state of the disk) are not fatal: the child trains
from scratch for the whole `fitness.epochs`, with the reason in `inherit_refused`.

When the search ranks or caps by `latency_ms` (`nas.evaluate.latency.wants_latency`), the trained network's
forward latency on the device that trained it is measured once per genome and process, and goes into the
result's metrics (`latency_ms` at batch 1, `latency_ms_batch` at the training batch size).
"""

import dataclasses
import gc
import math
import time
from typing import Any

import torch

from nas.config import Config
from nas.data.dataset import ImageData
from nas.data.loading import load_dataset
from nas.errors import UserError
from nas.evaluate.latency import CACHE, measure_latency, wants_latency
from nas.evaluate.objective import OBJECTIVES
from nas.evaluate.parent import Parent
from nas.evaluate.recipe import recipe
from nas.evaluate.result import Result
from nas.evaluate.rungfile import read_header
from nas.evaluate.threads import use_given_cores
from nas.evaluate.trainer import resolve_device, seeded_model, train_model, use_bf16
from nas.evaluate.weightsfile import capture_weights, check
from nas.genome.architecture import Architecture
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.model.analytic_cost import check_cost
from nas.model.inherit import transplant

ERROR_CHARS = 500


def error_text(exc: BaseException) -> str:
    """ "ExcType: first line of the message", short enough for a log line."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def release_memory() -> None:
    """Hand the memory of an out-of-memory candidate back: collect its frames, then empty the CUDA cache."""
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


class TrainObjective:
    """Genome -> `Result` by real training on the data it holds. Picklable (plain arrays and dataclasses)."""

    def __init__(self, config: Config, space: SearchSpace, data: ImageData):
        self.config = config
        self.space = space
        self.data = data
        self.latency = wants_latency(config)

    def architecture(self, genome: Genome) -> Architecture:
        d = self.data
        return Architecture.from_space(self.space, genome, d.in_channels, d.num_classes, d.input_size)

    def __call__(self, genome: Genome, device: str | None = None) -> Result:
        return self.guarded(genome, device)

    def train_rung(
        self, genome: Genome, epochs: int, full_epochs: int, state: bytes | None, device: str | None
    ) -> Result:
        """One rung of `search.fidelity`: train to epoch `epochs` of the `full_epochs` budget, from `state` (the
        previous rung's, None at the first); the result carries the new state and `epochs`. Never raises."""
        result = self.guarded(genome, device, rung=(epochs, full_epochs, state))
        if result.epochs is None:
            result.epochs = epochs
        return result

    def inherit(self, genome: Genome, parent: Parent, device: str | None = None) -> Result:
        """A whole evaluation that starts from `parent`'s weights (module docstring). Never raises."""
        return self.guarded(genome, device, parent=parent)

    def guarded(
        self,
        genome: Genome,
        device: str | None,
        rung: tuple[int, int, bytes | None] | None = None,
        parent: Parent | None = None,
    ) -> Result:
        """`evaluate` under the contract: a failed (or `oom`) result, never an exception."""
        start = time.perf_counter()
        try:
            return self.evaluate(genome, device, start, rung=rung, parent=parent)
        except UserError as exc:  # over the limits: never built
            return Result.failure(genome.key, genome.to_dict(), str(exc), seconds=time.perf_counter() - start)
        except Exception as exc:  # the contract: a failed result, never an exception
            status = "oom" if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError) else "failed"
            result = Result.failure(genome.key, genome.to_dict(), error_text(exc), status=status,
                                    seconds=time.perf_counter() - start)  # fmt: skip
        if result.status == "oom":
            release_memory()  # here, not in the except block, whose traceback still holds the frames' tensors
        return result

    def evaluate(
        self,
        genome: Genome,
        device: str | None,
        start: float,
        rung: tuple[int, int, bytes | None] | None = None,
        parent: Parent | None = None,
    ) -> Result:
        arch = self.architecture(genome)
        fitness = self.config.fitness
        params, flops = check_cost(arch, self.config.limits, fitness.batch_size, "this candidate")
        threads = use_given_cores(self.config.resources.cpus_per_trial)
        model = seeded_model(arch, self.config.seed)
        inherited = self.transplanted(model, arch, parent) if parent is not None else {}
        evaluate = ("val", "test") if fitness.test else ("val",)
        target, full, state = rung if rung is not None else (None, None, None)
        if parent is not None and "inherited_from" in inherited:
            full = parent.epochs  # a complete schedule of the inheriting candidate's own epochs
        stop = target if target is not None and full is not None and target < full else None  # the top: no state
        report = train_model(
            model, self.data, fitness, seed=self.config.seed, epochs=full, lr=genome.learning_rate, device=device,
            evaluate=evaluate, resume_from=state, stop_after=stop,
            **recipe(fitness, self.config.dataset.name, self.data),
        )  # fmt: skip
        accuracy = finite_or_none(report.val_accuracy)
        if accuracy is None:
            raise RuntimeError("no validation accuracy (empty validation split)")
        metrics = {
            "images_per_second": report.images_per_second,
            "peak_memory_mb": report.peak_memory_mb,
            "train_loss": finite_or_none(report.train_loss),
            "epochs": report.epochs,
            "threads": threads,
            **inherited,
        }
        if fitness.test:
            metrics["test_accuracy"] = finite_or_none(report.test_accuracy)
        if self.latency:
            metrics.update(self.latency_of(genome, model, device))
        if rung is not None:  # which schedule the rung trained under, and where its learning rate ended
            metrics["epochs_trained"] = report.epochs - (read_header(state)["epochs_done"] if state else 0)
            metrics["schedule_epochs"] = full
            metrics["final_lr"] = finite_or_none(report.final_lr)
        return Result(
            key=genome.key,
            genome=genome.to_dict(),
            status="ok",
            fitness=accuracy,
            params=params,
            flops=flops,
            seconds=time.perf_counter() - start,
            metrics=metrics,
            epochs=target,
            state=report.state,
            weights=capture_weights(model, genome.key, report.epochs, accuracy),
        )

    def transplanted(self, model: torch.nn.Module, arch: Architecture, parent: Parent) -> dict[str, Any]:
        """Load `parent`'s weights into the fresh `model` where shapes allow; the metrics that say so, or
        `inherit_refused` with the reason (the model then stays as it was built)."""
        from safetensors.torch import load

        try:
            meta = check(parent.weights)
            if meta["key"] != parent.key:
                raise ValueError(f"they are the weights of {str(meta['key'])[:12]}, not of the parent")
            state, record = transplant(self.architecture(parent.genome), load(parent.weights), arch,
                                       init=model.state_dict())  # fmt: skip
        except (ValueError, RuntimeError) as exc:
            return {"inherit_refused": error_text(exc)}
        model.load_state_dict(state)
        counts = {**dataclasses.asdict(record), "reasons": list(record.reasons),
                  "fraction_copied": round(record.fraction_copied, 6)}  # fmt: skip
        return {"inherited_from": parent.key, "distance": parent.distance, "inheritance": counts}

    def latency_of(self, genome: Genome, model: torch.nn.Module, device: str | None) -> dict[str, float]:
        """`latency_ms` and `latency_ms_batch` of the trained `model` where it trained, measured once a genome."""
        known = CACHE.get(genome.key)
        if known is None:
            fitness = self.config.fitness
            dev = resolve_device(device or fitness.device)
            shape = (self.data.in_channels, self.data.input_size, self.data.input_size)
            known = measure_latency(model, shape, fitness.batch_size, dev, use_bf16(fitness.precision, dev))
            CACHE.put(genome.key, known)
        return dict(known)


@OBJECTIVES.register("train")
def build_train_objective(config: Config, space: SearchSpace) -> TrainObjective:
    """Load the config's dataset once (validation carved by the config's seed) and hold it."""
    return TrainObjective(config, space, load_dataset(config.dataset, config.seed))
