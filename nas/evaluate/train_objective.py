"""The `train` objective: a candidate's fitness is its validation accuracy after the fixed-budget training.

Built once per search: it loads the dataset (validation carved by the config's seed) and is then shipped to the
workers as it is, arrays included, so Ray puts the data in its object store once. Every candidate is built and
initialised from the config's seed and trained with the same seed, so two candidates differ only by their
architecture (and, when the space searches it, their learning rate, which replaces `fitness.lr`).

It never raises: any exception inside building or training, out-of-memory included, becomes a failed `Result`
whose error is "ExcType: message" (first line, at most 500 characters), and the CUDA cache is emptied after an
out-of-memory so the worker can take the next candidate. Only KeyboardInterrupt and SystemExit get through.
"""

import math
import time

import torch

from nas.config import Config
from nas.data.dataset import ImageData
from nas.data.loading import load_dataset
from nas.evaluate.objective import OBJECTIVES
from nas.evaluate.result import Result
from nas.evaluate.rungfile import read_header
from nas.evaluate.trainer import seeded_model, train_model
from nas.genome.architecture import Architecture
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.model.analytic_cost import analytic_cost

ERROR_CHARS = 500


def error_text(exc: BaseException) -> str:
    """ "ExcType: first line of the message", short enough for a log line."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


class TrainObjective:
    """Genome -> `Result` by real training on the data it holds. Picklable (plain arrays and dataclasses)."""

    def __init__(self, config: Config, space: SearchSpace, data: ImageData):
        self.config = config
        self.space = space
        self.data = data

    def architecture(self, genome: Genome) -> Architecture:
        d = self.data
        return Architecture.from_space(self.space, genome, d.in_channels, d.num_classes, d.input_size)

    def __call__(self, genome: Genome, device: str | None = None) -> Result:
        start = time.perf_counter()
        try:
            return self.evaluate(genome, device, start)
        except Exception as exc:  # the contract: a failed result, never an exception
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            return Result.failure(genome.key, genome.to_dict(), error_text(exc), seconds=time.perf_counter() - start)

    def train_rung(
        self, genome: Genome, epochs: int, full_epochs: int, state: bytes | None, device: str | None
    ) -> Result:
        """One rung of `search.fidelity`: train to epoch `epochs` of the `full_epochs` budget, from `state` (the
        previous rung's, None at the first); the result carries the new state and `epochs`. Never raises."""
        start = time.perf_counter()
        try:
            return self.evaluate(genome, device, start, rung=(epochs, full_epochs, state))
        except Exception as exc:  # the contract: a failed result, never an exception
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            result = Result.failure(genome.key, genome.to_dict(), error_text(exc), seconds=time.perf_counter() - start)
            result.epochs = epochs
            return result

    def evaluate(
        self, genome: Genome, device: str | None, start: float, rung: tuple[int, int, bytes | None] | None = None
    ) -> Result:
        arch = self.architecture(genome)
        fitness = self.config.fitness
        params, flops = analytic_cost(arch)
        model = seeded_model(arch, self.config.seed)
        evaluate = ("val", "test") if fitness.test else ("val",)
        target, full, state = rung if rung is not None else (None, None, None)
        stop = target if target is not None and full is not None and target < full else None  # the top: no state
        report = train_model(model, self.data, fitness, seed=self.config.seed, epochs=full, lr=genome.learning_rate,
                             device=device, evaluate=evaluate, resume_from=state, stop_after=stop)  # fmt: skip
        accuracy = finite_or_none(report.val_accuracy)
        if accuracy is None:
            raise RuntimeError("no validation accuracy (empty validation split)")
        metrics = {
            "images_per_second": report.images_per_second,
            "peak_memory_mb": report.peak_memory_mb,
            "train_loss": finite_or_none(report.train_loss),
            "epochs": report.epochs,
        }
        if fitness.test:
            metrics["test_accuracy"] = finite_or_none(report.test_accuracy)
        if rung is not None:
            metrics["epochs_trained"] = report.epochs - (read_header(state)["epochs_done"] if state else 0)
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
        )


@OBJECTIVES.register("train")
def build_train_objective(config: Config, space: SearchSpace) -> TrainObjective:
    """Load the config's dataset once (validation carved by the config's seed) and hold it."""
    return TrainObjective(config, space, load_dataset(config.dataset, config.seed))
